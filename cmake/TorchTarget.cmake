# moe_use_torch(<target>): links LibTorch and reuses the one precompiled torch header, which turns
# a ~30 s compile per torch-including file into a few seconds.
add_library(moe_torch_pch STATIC ${CMAKE_CURRENT_LIST_DIR}/torch_pch.cc)
target_link_libraries(moe_torch_pch PUBLIC ${TORCH_LIBRARIES})
target_precompile_headers(moe_torch_pch PRIVATE <torch/torch.h>)

function(moe_use_torch target)
  target_link_libraries(${target} PRIVATE moe_torch_pch ${TORCH_LIBRARIES})
  target_precompile_headers(${target} REUSE_FROM moe_torch_pch)
endfunction()
