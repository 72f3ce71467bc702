# data benchmarks: loader samples/s on Fashion-MNIST HDF5 vs the UNet's training consumption rate.
# Run: build/bin/bench_loader [--data fmnist-train.h5] [--batch 64] [--threads 2]
# It times the UNet too, so a build that leaves out `models` (DUALIGN_SKIP_MODULES) leaves it out.
if(TARGET dualign_models)
  add_executable(bench_loader loader_bench.cpp)
  target_link_libraries(bench_loader PRIVATE dualign_data dualign_models)
  target_precompile_headers(bench_loader REUSE_FROM dualign_torch_pch)
endif()
