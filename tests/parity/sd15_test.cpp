// Stable Diffusion 1.5's UNet config: exact parameter count (diffusers: 859,520,964) and one forward+backward
// at a 4x32x32 latent on CPU with activation checkpointing (reports time and peak RSS).
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdlib>

#include "models/unet.h"

using namespace dualign::models;

namespace {
std::string source_dir() {
  const char* d = std::getenv("DUALIGN_SOURCE_DIR");
  return d ? d : ".";
}
double peak_rss_gib() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) / (1024.0 * 1024.0);  // ru_maxrss is KiB on Linux
}
}  // namespace

TEST(SD15, ParameterCount) {
  auto cfg = UNetConfig::from_file(source_dir() + "/configs/model/unet_sd15.yaml");
  UNet2DConditionModel unet(cfg);
  EXPECT_EQ(unet->num_parameters(), 859520964);
  std::printf("SD-1.5 UNet parameters: %ld\n", long(unet->num_parameters()));
}

TEST(SD15, ForwardBackwardCheckpointed) {
  if (const char* n = std::getenv("DUALIGN_THREADS")) at::set_num_threads(std::atoi(n));
  auto cfg = UNetConfig::from_file(source_dir() + "/configs/model/unet_sd15.yaml");
  UNet2DConditionModel unet(cfg);
  unet->set_gradient_checkpointing(true);
  torch::manual_seed(0);
  auto x = torch::randn({1, 4, 32, 32});
  auto t = torch::tensor({500}, torch::kInt64);
  auto ctx = torch::randn({1, 77, 768});
  auto start = std::chrono::steady_clock::now();
  auto out = unet->forward(x, t, ctx);
  auto mid = std::chrono::steady_clock::now();
  out.pow(2).mean().backward();
  auto end = std::chrono::steady_clock::now();
  double fwd = std::chrono::duration<double>(mid - start).count(), bwd = std::chrono::duration<double>(end - mid).count();
  int64_t with_grad = 0;
  for (const auto& p : unet->parameters()) with_grad += p.grad().defined();
  EXPECT_EQ(with_grad, int64_t(unet->parameters().size()));
  EXPECT_EQ(out.sizes(), x.sizes());
  std::printf("SD-1.5 fwd+bwd at 1x4x32x32, checkpointing on, %d threads: forward %.1f s, backward %.1f s, "
              "peak RSS %.2f GiB\n", at::get_num_threads(), fwd, bwd, peak_rss_gib());
}
