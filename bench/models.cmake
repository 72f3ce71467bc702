# UNet forward+backward: dualign vs diffusers on the same config, weights, input and thread count.
# Run: python bench/unet_bench.py --bin build/bin/bench_unet  (prints JSON lines and the time ratio)
add_executable(bench_unet unet_bench.cpp)
target_link_libraries(bench_unet PRIVATE dualign_models)
target_precompile_headers(bench_unet REUSE_FROM dualign_torch_pch)

# Reward back-propagation through VAE decode + CLIP tower: dualign vs PyTorch (diffusers + transformers), with and
# without gradient checkpointing. Run: python bench/reward_backprop_bench.py --bin build/bin/bench_reward_backprop
add_executable(bench_reward_backprop reward_backprop_bench.cpp)
target_link_libraries(bench_reward_backprop PRIVATE dualign_models)
target_precompile_headers(bench_reward_backprop REUSE_FROM dualign_torch_pch)
