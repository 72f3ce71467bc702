// Times forward+backward of dualign's UNet2DConditionModel loaded from a diffusers directory, on inputs from a
// safetensors file (written by bench/unet_bench.py, which times diffusers on the same data).
// usage: bench_unet MODEL_DIR INPUTS.safetensors THREADS ITERS [checkpointing 0|1]
// prints one JSON line: {"impl": "dualign", "median_s": ..., "min_s": ..., ...}
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "models/diffusers_io.h"
#include "models/safetensors.h"

using namespace dualign::models;

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s MODEL_DIR INPUTS.safetensors THREADS ITERS [checkpointing]\n", argv[0]);
    return 2;
  }
  const int threads = std::atoi(argv[3]), iters = std::atoi(argv[4]);
  const bool ckpt = argc > 5 && std::atoi(argv[5]) != 0;
  at::set_num_threads(threads);
  try {
    auto unet = load_diffusers_unet(argv[1]);
    unet->set_gradient_checkpointing(ckpt);
    auto io = load_safetensors(argv[2]);
    auto ctx = io.count("encoder_hidden_states") ? io.at("encoder_hidden_states") : torch::Tensor();
    std::vector<double> times;
    for (int i = 0; i < iters + 1; ++i) {  // 1 warm-up iteration
      unet->zero_grad();
      auto start = std::chrono::steady_clock::now();
      auto out = unet->forward(io.at("sample"), io.at("timesteps"), ctx);
      out.pow(2).mean().backward();
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (i >= 1) times.push_back(s);
    }
    std::string list;
    for (size_t i = 0; i < times.size(); ++i) list += (i ? ", " : "") + std::to_string(times[i]);
    std::sort(times.begin(), times.end());
    std::printf("{\"impl\": \"dualign\", \"median_s\": %.5f, \"min_s\": %.5f, \"iters\": %d, \"threads\": %d, "
                "\"checkpointing\": %s, \"times_s\": [%s]}\n",
                times[times.size() / 2], times.front(), iters, threads, ckpt ? "true" : "false", list.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_unet: %s\n", e.what());
    return 1;
  }
  return 0;
}
