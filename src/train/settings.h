// The typed view of the `train`, `dist`, `run` and top-level keys the trainer reads. Reading is strict:
// a missing required key, a wrong type or an unknown key is an error naming the key and where it was set.
#pragma once
#include <cstdint>
#include <string>

namespace dualign::config {
class Config;
}

namespace dualign::train {

struct TrainSettings {
  uint64_t seed = 0;
  int threads = 0;
  // train.*
  int64_t steps = 0, global_batch = 0, grad_accum = 1, warmup_steps = 0;
  double lr = 0, weight_decay = 0, beta1 = 0.9, beta2 = 0.999, grad_clip = 0, ema_decay = 0;
  std::string lr_schedule = "constant";
  int64_t checkpoint_every = 0;  // steps between checkpoints; 0: only at the end; -1: never
  int keep_checkpoints = 3;
  int64_t eval_num_samples = 0, eval_steps = 50;
  std::string eval_sampler = "ddim";
  // dist.*
  int zero_stage = 0;
  double bucket_mb = 25;
  // run.*
  std::string run_dir;
  std::string resume = "auto";  // auto (latest checkpoint in run.dir, if any) | none | <checkpoint or dir>
  int64_t log_every = 10;
  int64_t sample_every = 0, sample_count = 64, sample_steps = 25;  // validation samples (0: off)
  bool per_rank_logs = true, progress = true;

  // Samples per micro-step over all ranks; checks that the batch divides evenly.
  int64_t global_micro_batch(int world_size) const;
};

TrainSettings read_settings(const config::Config& cfg);

}  // namespace dualign::train
