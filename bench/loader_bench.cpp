// Loader throughput vs training consumption on Fashion-MNIST (JSON lines on stdout).
//   loader: samples/s of data::Loader alone (prefetch thread, uint8 -> float in [-1, 1]), one rank of world 1
//           and one rank of world 2 (reads half of each global batch);
//   train:  samples/s of the class-conditional Fashion-MNIST UNet (configs/model/unet_class_cond.yaml with one
//           channel; images padded 28 -> 32) doing forward + backward + AdamW on loader batches of the same size,
//           and the time each step waited for the loader (prefetch should make it ~0);
//   ratio:  loader / train, goal >= 20.
// Usage: bench_loader [--data fmnist-train.h5] [--batch 64] [--batches 300] [--train-steps 4] [--threads 2]
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include "data/loader.h"
#include "data/synthetic.h"
#include "models/unet.h"

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double loader_rate(const std::string& path, int64_t batch, int64_t batches, int world) {
  dualign::data::LoaderOptions o;
  o.path = path;
  o.global_batch = batch * world;  // the same local batch per rank
  o.rank = 0;
  o.world_size = world;
  o.seed = 1;
  o.prefetch = 4;
  o.images_to_float = true;
  o.fields = {"images", "labels"};
  dualign::data::Loader loader(o);
  for (int i = 0; i < 5; ++i) loader.next();  // warm the chunk cache and the thread
  auto t0 = std::chrono::steady_clock::now();
  double checksum = 0;
  for (int64_t i = 0; i < batches; ++i) checksum += loader.next()["images"][0][0][0][0].item<float>();
  double s = seconds_since(t0);
  std::printf("{\"bench\": \"loader\", \"world_size\": %d, \"local_batch\": %lld, \"batches\": %lld, "
              "\"seconds\": %.4f, \"samples_per_s\": %.1f, \"checksum\": %.3f}\n",
              world, static_cast<long long>(batch), static_cast<long long>(batches), s, batch * batches / s, checksum);
  return batch * batches / s;
}

// Trains on real loader batches (28x28 padded to 32) and also reports how long each step waited in next().
double train_rate(const std::string& path, int64_t batch, int steps) {
  dualign::models::UNetConfig c;  // configs/model/unet_class_cond.yaml with one channel
  c.sample_size = 32;
  c.in_channels = c.out_channels = 1;
  c.down_block_types = {"DownBlock2D", "DownBlock2D", "DownBlock2D"};
  c.mid_block_type = "UNetMidBlock2D";
  c.up_block_types = {"UpBlock2D", "UpBlock2D", "UpBlock2D"};
  c.block_out_channels = {64, 128, 128};
  c.layers_per_block = 2;
  c.norm_num_groups = 32;
  c.num_class_embeds = 11;
  torch::manual_seed(0);
  dualign::models::UNet2DConditionModel unet(c);
  torch::optim::AdamW opt(unet->parameters(), torch::optim::AdamWOptions(1e-4));
  dualign::data::LoaderOptions o;
  o.path = path;
  o.global_batch = batch;
  o.seed = 2;
  o.images_to_float = true;
  o.fields = {"images", "labels"};
  dualign::data::Loader loader(o);
  double waited = 0;
  auto step = [&] {
    auto t_wait = std::chrono::steady_clock::now();
    auto b = loader.next();
    waited += seconds_since(t_wait);
    auto x0 = torch::constant_pad_nd(b["images"], {2, 2, 2, 2}, -1.0);
    auto noise = torch::randn_like(x0);
    auto t = torch::randint(1000, {batch});
    opt.zero_grad();
    auto loss = (unet->forward(x0 + noise, t, {}, b["labels"]) - noise).pow(2).mean();
    loss.backward();
    opt.step();
  };
  step();  // warm-up (allocations)
  waited = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) step();
  double s = seconds_since(t0);
  std::printf("{\"bench\": \"train_unet_fmnist\", \"params\": %lld, \"batch\": %lld, \"steps\": %d, \"seconds\": %.4f, "
              "\"samples_per_s\": %.1f, \"loader_wait_ms_per_step\": %.3f}\n",
              static_cast<long long>(unet->num_parameters()), static_cast<long long>(batch), steps, s, batch * steps / s,
              1e3 * waited / steps);
  return batch * steps / s;
}

}  // namespace

int main(int argc, char** argv) {
  std::string data = "/tmp/dualign-bench/fmnist-train.h5";
  int64_t batch = 64, batches = 300;
  int train_steps = 4, threads = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i], v = argv[i + 1];
    if (a == "--data") data = v;
    else if (a == "--batch") batch = std::stoll(v);
    else if (a == "--batches") batches = std::stoll(v);
    else if (a == "--train-steps") train_steps = std::stoi(v);
    else if (a == "--threads") threads = std::stoi(v);
    else { std::fprintf(stderr, "unknown option %s\n", a.c_str()); return 2; }
  }
  at::set_num_threads(threads);
  if (!std::filesystem::exists(data)) {
    auto dir = std::filesystem::path(data).parent_path().string();
    dualign::data::import_fashion_mnist("/usr/share/datasets/fashion-mnist", dir, false);
    data = dir + "/fmnist-train.h5";
  }
  double loader1 = loader_rate(data, batch, batches, 1);
  double loader2 = loader_rate(data, batch, batches, 2);
  double train = train_rate(data, batch, train_steps);
  double loader = std::min(loader1, loader2);  // the slower of the two runs (the machine is shared)
  std::printf("{\"bench\": \"loader_vs_train\", \"threads\": %d, \"loader_samples_per_s\": %.1f, "
              "\"train_samples_per_s\": %.1f, \"ratio\": %.1f, \"goal\": 20, \"pass\": %s}\n",
              threads, loader, train, loader / train, loader / train >= 20 ? "true" : "false");
  return 0;
}
