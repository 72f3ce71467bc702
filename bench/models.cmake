# UNet forward+backward: dualign vs diffusers on the same config, weights, input and thread count.
# Run: python bench/unet_bench.py --bin build/bin/bench_unet  (prints JSON lines and the time ratio)
add_executable(bench_unet unet_bench.cpp)
target_link_libraries(bench_unet PRIVATE dualign_models)
target_precompile_headers(bench_unet REUSE_FROM dualign_torch_pch)
