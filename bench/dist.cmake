# dist benchmarks: overlap of the bucketed gradient all-reduce with backward, and its bus bandwidth vs a
# raw MPI_Allreduce of the same bytes. Run: mpirun -np 2 build/bin/bench_allreduce_overlap
add_executable(bench_allreduce_overlap allreduce_overlap.cpp)
target_link_libraries(bench_allreduce_overlap PRIVATE dualign_dist)
target_precompile_headers(bench_allreduce_overlap REUSE_FROM dualign_torch_pch)
