# moe_use_tcmalloc(<executable>): links tcmalloc (gperftools' minimal build) in place of glibc's
# malloc. Every program of the project allocates tensors whose sizes change from one call to the
# next (a MoE layer's per-expert batches follow the routing; decode batches grow and shrink), and
# gRPC allocates many small messages. glibc's malloc raises its mmap threshold after the first
# large frees, then serves the varying sizes from a heap it cannot give back: the MoE trainer held
# 3.5 GB after 40 steps (1.0 GB with tcmalloc) and ran a fifth slower. The math is unchanged
# (bit-identical weights); bench/RESULTS.md has the serving figures. Sanitizer and fuzz builds
# keep the sanitizers' allocator; -DMOE_TCMALLOC=OFF builds with glibc's (to compare, or where
# gperftools is missing).
option(MOE_TCMALLOC "Link the programs with tcmalloc" ON)
if(MOE_TCMALLOC AND NOT MOE_SANITIZE AND NOT MOE_FUZZ)
  find_library(MOE_TCMALLOC_LIBRARY tcmalloc_minimal REQUIRED)
endif()

function(moe_use_tcmalloc target)
  if(MOE_TCMALLOC_LIBRARY)
    target_link_libraries(${target} PRIVATE ${MOE_TCMALLOC_LIBRARY})
  endif()
endfunction()
