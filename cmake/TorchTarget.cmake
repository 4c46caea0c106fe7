# moe_use_torch(<target>): links LibTorch and gives the target's torch-including files the one
# precompiled torch header, which turns a ~30 s compile per such file into a few seconds.
#
# The header is 570 MB and costs ~6 s to load even in a file that never touches torch, so a file
# gets it only when it includes torch, itself or through the project's headers: the scan below
# follows `#include "..."` lines inside the source tree at configure time. A file whose includes
# changed since then still builds correctly, only slower or faster, until CMake runs again.
add_library(moe_torch_pch STATIC ${CMAKE_CURRENT_LIST_DIR}/torch_pch.cc)
target_link_libraries(moe_torch_pch PUBLIC ${TORCH_LIBRARIES})
target_precompile_headers(moe_torch_pch PRIVATE <torch/torch.h>)

# Sets <out> to TRUE if <file> (absolute) includes torch or ATen, directly or through a quoted
# include that resolves under the project's source directory. Results are cached per file.
function(_moe_includes_torch file out)
  get_property(known GLOBAL PROPERTY "_moe_torch_scan:${file}" SET)
  if(known)
    get_property(result GLOBAL PROPERTY "_moe_torch_scan:${file}")
    set(${out} ${result} PARENT_SCOPE)
    return()
  endif()
  # Marked FALSE first, so an include cycle ends.
  set_property(GLOBAL PROPERTY "_moe_torch_scan:${file}" FALSE)
  set(result FALSE)
  file(STRINGS "${file}" includes REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"]")
  foreach(line IN LISTS includes)
    if(line MATCHES "<(torch|ATen|c10)/")
      set(result TRUE)
      break()
    endif()
    if(line MATCHES "\"([^\"]+)\"")
      set(header "${PROJECT_SOURCE_DIR}/${CMAKE_MATCH_1}")
      if(EXISTS "${header}")
        _moe_includes_torch("${header}" nested)
        if(nested)
          set(result TRUE)
          break()
        endif()
      endif()
    endif()
  endforeach()
  set_property(GLOBAL PROPERTY "_moe_torch_scan:${file}" ${result})
  set(${out} ${result} PARENT_SCOPE)
endfunction()

# A target's torch-including files are also compiled MOE_TORCH_UNITY at a time as one (a unity
# build): each file alone pays the header's load and instantiates much the same torch templates
# again. 1 compiles every file on its own.
set(MOE_TORCH_UNITY 4 CACHE STRING "Torch-including files of a target compiled together (1: none)")

function(moe_use_torch target)
  target_link_libraries(${target} PRIVATE moe_torch_pch ${TORCH_LIBRARIES})
  target_precompile_headers(${target} REUSE_FROM moe_torch_pch)
  get_target_property(sources ${target} SOURCES)
  get_target_property(source_dir ${target} SOURCE_DIR)
  set(torch_sources "")
  foreach(source IN LISTS sources)
    get_filename_component(path "${source}" ABSOLUTE BASE_DIR "${source_dir}")
    if(NOT path MATCHES "\\.(cc|cpp|cxx)$" OR NOT EXISTS "${path}")
      continue()
    endif()
    _moe_includes_torch("${path}" uses_torch)
    if(uses_torch)
      list(APPEND torch_sources "${source}")
    else()
      set_source_files_properties("${source}" TARGET_DIRECTORY ${target}
                                  PROPERTIES SKIP_PRECOMPILE_HEADERS ON)
    endif()
  endforeach()
  list(LENGTH torch_sources n)
  if(MOE_TORCH_UNITY GREATER 1 AND n GREATER 1)
    # GROUP mode: only the files given a group are merged; the others compile on their own.
    set_target_properties(${target} PROPERTIES UNITY_BUILD ON UNITY_BUILD_MODE GROUP)
    # ceil(n / MOE_TORCH_UNITY) groups, dealt round-robin so that they come out even.
    math(EXPR groups "(${n} + ${MOE_TORCH_UNITY} - 1) / ${MOE_TORCH_UNITY}")
    set(i 0)
    foreach(source IN LISTS torch_sources)
      math(EXPR group "${i} % ${groups}")
      set_source_files_properties("${source}" TARGET_DIRECTORY ${target}
                                  PROPERTIES UNITY_GROUP "torch${group}")
      math(EXPR i "${i} + 1")
    endforeach()
  endif()
endfunction()
