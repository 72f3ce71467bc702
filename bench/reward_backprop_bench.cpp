// Reward back-propagation through VAE decode + CLIP image tower (dualign side of bench/reward_backprop_bench.py):
//   bench_reward_backprop DIR THREADS ITERS CHECKPOINTING
// DIR holds vae/ (diffusers AutoencoderKL), clip/ (transformers CLIP vision tower) and io.safetensors (latents,
// text). Each iteration: images = vae.decode_latents(latents) → CLIP preprocessing → tower → cos with the text
// embedding → sum → backward to the latents. Prints one JSON line: median seconds per iteration, peak RSS and
// the RSS after loading (MB).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "models/clip_preprocess.h"
#include "models/clip_vision.h"
#include "models/safetensors.h"
#include "models/vae.h"

namespace {
double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}
}  // namespace

int main(int argc, char** argv) {
  using namespace dualign::models;
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s DIR THREADS ITERS CHECKPOINTING\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  const int threads = std::atoi(argv[2]), iters = std::atoi(argv[3]);
  const bool ckpt = std::atoi(argv[4]) != 0;
  at::set_num_threads(threads);
  at::set_num_interop_threads(1);
  auto vae = load_diffusers_vae(dir + "/vae");
  auto clip = load_clip_vision(dir + "/clip");
  for (auto& p : vae->parameters()) p.set_requires_grad(false);
  for (auto& p : clip.model->parameters()) p.set_requires_grad(false);
  vae->set_gradient_checkpointing(ckpt);
  clip.model->set_gradient_checkpointing(ckpt);
  auto preprocess = ClipPreprocess::for_tower(clip.model->config().image_size, clip.preprocessor);
  auto io = load_safetensors(dir + "/io.safetensors");
  auto text = io.at("text");
  text = text / text.norm(2, {-1}, true);
  const double base_rss = peak_rss_mb();
  std::vector<double> times;
  double grad_norm = 0;
  for (int i = 0; i < iters + 1; ++i) {  // the first iteration warms up
    auto latents = io.at("latents").clone().requires_grad_(true);
    const auto start = std::chrono::steady_clock::now();
    auto image = clip.model->forward(preprocess(vae->decode_latents(latents)));
    auto reward = ((image / image.norm(2, {-1}, true)) * text).sum();
    reward.backward();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (i > 0) times.push_back(s);
    grad_norm = latents.grad().norm().item<double>();
  }
  std::sort(times.begin(), times.end());
  std::printf("{\"impl\": \"dualign\", \"checkpointing\": %s, \"median_s\": %.4f, \"peak_rss_mb\": %.1f, "
              "\"loaded_rss_mb\": %.1f, \"grad_norm\": %.6g}\n",
              ckpt ? "true" : "false", times[times.size() / 2], peak_rss_mb(), base_rss, grad_norm);
  return 0;
}
