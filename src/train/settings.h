// The typed view of the `train`, `dist`, `run` and top-level keys the trainer reads. Reading is strict:
// a missing required key, a wrong type or an unknown key is an error naming the key and where it was set.
#pragma once
#include <cstdint>
#include <string>

namespace dualign::config {
class Config;
}

namespace dualign::train {

// train.loss_scale: the dynamic loss scale of fp16 training, as torch.cuda.amp.GradScaler.
struct LossScaleSettings {
  double init = 65536.0;  // 2^16
  double growth_factor = 2.0, backoff_factor = 0.5;
  int64_t growth_interval = 2000;  // finite steps in a row before the scale grows
};

// train.adafactor: transformers.optimization.Adafactor's options (dist/adafactor.h), read when
// train.optimizer=adafactor. The step size is train.lr under train.lr_schedule (relative_step=False).
struct AdafactorSettings {
  double beta1 = 0;  // 0: no first moment (transformers' beta1=None)
  double decay_rate = -0.8, clip_threshold = 1.0, eps1 = 1e-30, eps2 = 1e-3;
  bool scale_parameter = false;
};

struct TrainSettings {
  uint64_t seed = 0;
  int threads = 0;
  // train.*
  int64_t steps = 0, global_batch = 0, grad_accum = 1, warmup_steps = 0;
  double lr = 0, weight_decay = 0, beta1 = 0.9, beta2 = 0.999, grad_clip = 0, ema_decay = 0;
  std::string lr_schedule = "constant";
  std::string optimizer = "adamw";  // adamw (train.betas, train.weight_decay) | adafactor (train.adafactor)
  AdafactorSettings adafactor;
  int64_t checkpoint_every = 0;  // steps between checkpoints; 0: only at the end; -1: never
  int keep_checkpoints = 3;
  int64_t eval_num_samples = 0, eval_steps = 50;
  std::string eval_sampler = "ddim";
  // Mixed precision (docs/precision.md): autocast of every forward inside Method::loss; fp32 master weights and
  // fp32 optimizer state whatever the precision.
  std::string precision = "fp32";  // fp32 | bf16 | fp16
  bool tf32 = false;               // CUDA matmuls and cuDNN convolutions in TF32 (no effect on CPU)
  LossScaleSettings loss_scale;    // fp16 only
  // A non-finite loss or gradient norm on any rank: skip the update everywhere and count it, or stop the run.
  std::string nonfinite = "skip";  // skip | abort
  int64_t nonfinite_max_consecutive = 20;
  // dist.*
  int zero_stage = 0;
  double bucket_mb = 25;
  std::string reduce_dtype = "fp32";  // fp32 | bf16: dtype of the gradient all-reduce / reduce-scatter
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
