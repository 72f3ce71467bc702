#include "train/settings.h"

#include "config/config.h"
#include "util/error.h"

namespace dualign::train {

TrainSettings read_settings(const config::Config& cfg) {
  TrainSettings s;
  auto root = cfg.root();
  s.seed = static_cast<uint64_t>(root.get<int64_t>("seed"));
  s.threads = root.get<int>("threads", 0);

  auto t = cfg.section("train");
  s.steps = t.get<int64_t>("steps");
  s.global_batch = t.get<int64_t>("global_batch");
  s.grad_accum = t.get<int64_t>("grad_accum", 1);
  s.lr = t.get<double>("lr");
  s.weight_decay = t.get<double>("weight_decay", 0.0);
  auto betas = t.get<std::vector<double>>("betas", {0.9, 0.999});
  if (betas.size() != 2) fail("config key 'train.betas' ({}): expected two numbers, got {}", cfg.origin("train.betas"), betas.size());
  s.beta1 = betas[0];
  s.beta2 = betas[1];
  s.optimizer = t.get<std::string>("optimizer", "adamw");
  DUALIGN_CHECK(s.optimizer == "adamw" || s.optimizer == "adafactor",
                "config key 'train.optimizer' ({}): expected adamw or adafactor, got '{}'", cfg.origin("train.optimizer"),
                s.optimizer);
  if (t.has("adafactor")) {
    auto a = t.section("adafactor");
    auto& af = s.adafactor;
    af.beta1 = a.get<double>("beta1", af.beta1);
    af.decay_rate = a.get<double>("decay_rate", af.decay_rate);
    af.clip_threshold = a.get<double>("clip_threshold", af.clip_threshold);
    auto eps = a.get<std::vector<double>>("eps", {af.eps1, af.eps2});
    if (eps.size() != 2 || eps[0] < 0 || eps[1] < 0)
      fail("config key 'train.adafactor.eps' ({}): expected two numbers >= 0 (added to grad^2, lower bound of the "
           "parameter RMS), got {} number(s)", cfg.origin("train.adafactor.eps"), eps.size());
    af.eps1 = eps[0];
    af.eps2 = eps[1];
    af.scale_parameter = a.get<bool>("scale_parameter", af.scale_parameter);
    for (const char* key : {"relative_step", "warmup_init"})
      if (a.get<bool>(key, false))
        fail("config key 'train.adafactor.{}' ({}): only false is supported (the step size is train.lr under "
             "train.lr_schedule, as transformers' relative_step=False)", key,
             cfg.origin(std::string("train.adafactor.") + key));
    a.finish();
    DUALIGN_CHECK(af.beta1 >= 0 && af.beta1 < 1,
                  "config key 'train.adafactor.beta1' ({}): expected 0 <= beta1 < 1 (0: no first moment), got {}",
                  cfg.origin("train.adafactor.beta1"), af.beta1);
    DUALIGN_CHECK(af.decay_rate < 0,
                  "config key 'train.adafactor.decay_rate' ({}): expected a negative number (beta2 = 1 - step^rate), "
                  "got {}", cfg.origin("train.adafactor.decay_rate"), af.decay_rate);
    DUALIGN_CHECK(af.clip_threshold > 0, "config key 'train.adafactor.clip_threshold' ({}): expected > 0, got {}",
                  cfg.origin("train.adafactor.clip_threshold"), af.clip_threshold);
  }
  s.warmup_steps = t.get<int64_t>("warmup_steps", 0);
  s.lr_schedule = t.get<std::string>("lr_schedule", "constant");
  s.grad_clip = t.get<double>("grad_clip", 0.0);
  s.ema_decay = t.get<double>("ema_decay", 0.0);
  s.checkpoint_every = t.get<int64_t>("checkpoint_every", 0);
  s.keep_checkpoints = t.get<int>("keep_checkpoints", 3);
  auto e = t.section("eval");
  s.eval_num_samples = e.get<int64_t>("num_samples");
  s.eval_sampler = e.get<std::string>("sampler");
  s.eval_steps = e.get<int64_t>("steps");
  e.finish();
  s.precision = t.get<std::string>("precision", "fp32");
  DUALIGN_CHECK(s.precision == "fp32" || s.precision == "bf16" || s.precision == "fp16",
                "config key 'train.precision' ({}): expected fp32, bf16 or fp16, got '{}'",
                cfg.origin("train.precision"), s.precision);
  s.tf32 = t.get<bool>("tf32", false);
  if (t.has("loss_scale")) {
    auto ls = t.section("loss_scale");
    s.loss_scale.init = ls.get<double>("init", s.loss_scale.init);
    s.loss_scale.growth_factor = ls.get<double>("growth_factor", s.loss_scale.growth_factor);
    s.loss_scale.backoff_factor = ls.get<double>("backoff_factor", s.loss_scale.backoff_factor);
    s.loss_scale.growth_interval = ls.get<int64_t>("growth_interval", s.loss_scale.growth_interval);
    ls.finish();
    DUALIGN_CHECK(s.loss_scale.init > 0 && s.loss_scale.growth_factor >= 1 && s.loss_scale.backoff_factor > 0 &&
                      s.loss_scale.backoff_factor < 1 && s.loss_scale.growth_interval > 0,
                  "train.loss_scale: expected init > 0, growth_factor >= 1, 0 < backoff_factor < 1 and "
                  "growth_interval > 0");
  }
  s.nonfinite = t.get<std::string>("nonfinite", "skip");
  DUALIGN_CHECK(s.nonfinite == "skip" || s.nonfinite == "abort",
                "config key 'train.nonfinite' ({}): expected skip or abort, got '{}'", cfg.origin("train.nonfinite"),
                s.nonfinite);
  s.nonfinite_max_consecutive = t.get<int64_t>("nonfinite_max_consecutive", 20);
  DUALIGN_CHECK(s.nonfinite_max_consecutive >= 1, "config key 'train.nonfinite_max_consecutive': expected >= 1, got {}",
                s.nonfinite_max_consecutive);
  t.finish();
  DUALIGN_CHECK(s.steps > 0 && s.global_batch > 0 && s.grad_accum > 0 && s.lr > 0,
                "train.steps, train.global_batch, train.grad_accum and train.lr must be positive");

  auto d = cfg.section("dist");
  s.zero_stage = d.get<int>("zero_stage", 0);
  s.bucket_mb = d.get<double>("bucket_mb", 25.0);
  s.reduce_dtype = d.get<std::string>("reduce_dtype", "fp32");
  DUALIGN_CHECK(s.reduce_dtype == "fp32" || s.reduce_dtype == "bf16",
                "config key 'dist.reduce_dtype' ({}): expected fp32 or bf16, got '{}'", cfg.origin("dist.reduce_dtype"),
                s.reduce_dtype);
  d.finish();

  auto r = cfg.section("run");
  s.run_dir = r.get<std::string>("dir");
  s.log_every = r.get<int64_t>("log_every", 10);
  s.sample_every = r.get<int64_t>("sample_every", 0);
  s.sample_count = r.get<int64_t>("sample_count", 64);
  s.sample_steps = r.get<int64_t>("sample_steps", 25);
  DUALIGN_CHECK(s.sample_every >= 0 && s.sample_count > 0 && s.sample_steps > 0,
                "config keys '{}', '{}', '{}': expected sample_every >= 0 and positive count and steps",
                r.path("sample_every"), r.path("sample_count"), r.path("sample_steps"));
  s.resume = r.get<std::string>("resume", "auto");
  s.per_rank_logs = r.get<bool>("per_rank_logs", true);
  s.progress = r.get<bool>("progress", true);
  r.finish({"root", "job_num"});
  return s;
}

int64_t TrainSettings::global_micro_batch(int world_size) const {
  if (global_batch % (grad_accum * world_size) != 0)
    fail("train.global_batch={} must be divisible by train.grad_accum ({}) x ranks ({})", global_batch, grad_accum,
         world_size);
  return global_batch / grad_accum;
}

}  // namespace dualign::train
