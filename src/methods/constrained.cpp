// Constrained reward alignment: see constrained.h for the objective, the gradient choices and the config keys.
#include "methods/constrained.h"

#include <fmt/format.h>

#include <cmath>
#include <optional>

#include "config/config.h"
#include "diffusion/guidance.h"
#include "dist/comm.h"
#include "dual/dual_ascent.h"
#include "methods/preference.h"
#include "methods/reward_backprop.h"
#include "rewards/reward.h"
#include "util/error.h"
#include "util/log.h"
#include "util/seed.h"

namespace dualign::methods {
namespace {

struct Constraint {
  std::string name;
  std::string reward_key;  // config path of the reward section, for errors
  std::unique_ptr<rewards::Reward> reward;
  double threshold = 0;
  std::string normalize;  // none | mean | mean_std
  std::optional<double> given_mean, given_std;  // reference statistics from the config (else estimated)
};

// cfg.<key> if present (else its keys take their defaults): a section of all-defaults may be left out.
config::Section optional_section(const config::Section& cfg, const std::string& key) {
  if (cfg.has(key)) return cfg.section(key);
  return {std::make_shared<const config::Composed>(), cfg.path(key), YAML::Node(YAML::NodeType::Map)};
}

diffusion::SamplerConfig read_sampler(const config::Section& s) {
  diffusion::SamplerConfig c;
  c.kind = s.get<std::string>("kind", "ddim");
  c.num_inference_steps = s.get<int64_t>("steps", 20);
  c.eta = s.get<double>("eta", c.kind == "ddim" ? 1.0 : 0.0);
  c.timestep_spacing = s.get<std::string>("timestep_spacing", c.timestep_spacing);
  s.finish();
  if (c.kind != "ddim" && c.kind != "ddpm") fail("config key '{}': expected ddim or ddpm, got '{}'", s.path("kind"), c.kind);
  if (c.num_inference_steps < 1) fail("config key '{}': must be >= 1, got {}", s.path("steps"), c.num_inference_steps);
  if (c.eta < 0 || (c.kind == "ddpm" && c.eta != 0))
    fail("config key '{}': expected eta >= 0 (ddim only), got {}", s.path("eta"), c.eta);
  return c;
}

class Constrained : public Method {
 public:
  Constrained(const config::Section& cfg, const MethodContext& ctx)
      : schedule_(ctx.schedule), device_(ctx.device), sampler_(ctx.schedule, read_sampler(optional_section(cfg, "sampler"))) {
    reference_ = frozen_reference(ctx, cfg.get<std::string>("reference_dtype", "float32"), cfg.path("reference_dtype"));
    const auto n_steps = static_cast<int64_t>(sampler_.timesteps().size());
    grad_steps_ = cfg.get<int64_t>("grad_steps");
    grad_steps_std_ = cfg.get<double>("grad_steps_std", 0.0);
    if (grad_steps_ < 1 || grad_steps_ > n_steps)
      fail("config key '{}': must be in [1, {}] (method.sampler.steps), got {}", cfg.path("grad_steps"), n_steps,
           grad_steps_);
    if (grad_steps_std_ < 0) fail("config key '{}': must be >= 0, got {}", cfg.path("grad_steps_std"), grad_steps_std_);

    auto kl = optional_section(cfg, "kl");
    kl_weight_ = kl.get<double>("weight", 1.0);
    options_.weighting = parse_kl_weighting(kl.get<std::string>("weighting", "lemma1"), kl.path("weighting"));
    options_.kl_all_steps = kl.get<bool>("all_steps", true);
    kl.finish();
    if (kl_weight_ < 0) fail("config key '{}': must be >= 0, got {}", kl.path("weight"), kl_weight_);
    options_.with_kl = true;  // always estimated: it is the quantity the method minimises and reports
    if (options_.weighting == KlWeighting::lemma1) {
      bool any_noisy = false;
      for (size_t i = 0; i < sampler_.timesteps().size(); ++i) any_noisy = any_noisy || sampler_.step_needs_noise(i);
      if (!any_noisy)
        fail("config key '{}': lemma1 needs a stochastic sampler (ddpm, or ddim with eta > 0); '{}' has none",
             kl.path("weighting"), cfg.path("sampler"));
    }

    auto guidance = optional_section(cfg, "guidance");
    guidance_key_ = guidance.path("scale");
    guidance_scale_ = guidance.get<double>("scale", 1.0);
    guidance_rescale_ = guidance.get<double>("rescale", 0.0);
    guidance.finish();
    if (!(guidance_scale_ >= 1)) fail("config key '{}': expected >= 1 (1 = no guidance), got {}", guidance_key_, guidance_scale_);
    if (guidance_rescale_ < 0 || guidance_rescale_ > 1)
      fail("config key '{}': expected a value in [0, 1], got {}", guidance.path("rescale"), guidance_rescale_);

    read_constraints(cfg.section("constraints"), ctx.device);
    std::vector<std::string> names;
    for (const auto& c : constraints_) names.push_back(c.name);
    dual_ = std::make_unique<dual::DualAscent>(names, dual::DualSettings::read(cfg.section("dual"), names.size()));

    const auto m = static_cast<int64_t>(constraints_.size());
    norm_mean_ = torch::zeros({m}, torch::kFloat64);
    norm_std_ = torch::ones({m}, torch::kFloat64);
    auto norm = optional_section(cfg, "normalization");
    const int64_t norm_samples = norm.get<int64_t>("samples", 1024);
    const auto norm_seed = norm.get<int64_t>("seed", 0);
    norm.finish();
    bool estimate = false;
    for (size_t i = 0; i < constraints_.size(); ++i) {
      const auto& c = constraints_[i];
      const auto row = static_cast<int64_t>(i);
      if (c.given_mean) norm_mean_[row] = *c.given_mean;
      if (c.given_std) norm_std_[row] = *c.given_std;
      estimate = estimate || (c.normalize != "none" && !c.given_mean) || (c.normalize == "mean_std" && !c.given_std);
    }
    if (estimate) {
      // Unconditional reference draws: a model that needs its condition (text) must be given the statistics, as the
      // reference code's cached table gives them for SD-1.5.
      if (reference_->text_conditional() || reference_->num_classes() > 0)
        fail("config key '{}': a conditional model's reference statistics are not estimated here: give "
             "reference_mean (and reference_std for mean_std) under each normalised constraint",
             cfg.path("constraints"));
      if (norm_samples < 2) fail("config key '{}': must be >= 2, got {}", norm.path("samples"), norm_samples);
      estimate_normalization(norm_samples, static_cast<uint64_t>(norm_seed), ctx.comm);
    }
  }

  std::string name() const override { return "constrained"; }

  LossOutput loss(models::ScoreModel& policy, const data::Batch& batch) override {
    const auto shape = policy.sample_shape();
    auto x_T = data::draw_global_normal(batch, "constrained/x_T", shape, device_);
    const int64_t k = draw_grad_steps(batch);
    auto noise = [&](size_t i) {
      return data::draw_global_normal(batch, fmt::format("constrained/noise/{}", i).c_str(), shape, device_);
    };
    RolloutOptions options = options_;
    options.grad_steps = k;
    auto roll = rollout(sampler_, schedule_, model_fn(policy, batch), model_fn(*reference_, batch), x_T, noise, options);

    const auto b = static_cast<double>(batch.local_size());
    LossOutput out{kl_weight_ * roll.kl.mean(), {}};
    const auto lambda = dual_->lambda();
    const auto mean = vec(norm_mean_), sd = vec(norm_std_);
    for (size_t i = 0; i < constraints_.size(); ++i) {
      auto& c = constraints_[i];
      auto r = c.reward->score(roll.x0, batch.cond);
      if (roll.x0.requires_grad() && !r.requires_grad())
        fail("config key '{}': reward '{}' passes no gradient to the samples (constrained alignment back-propagates "
             "through it)", c.reward_key, c.reward->describe());
      auto slack = c.threshold - (r - mean[i]) / sd[i];  // ≤ 0 form: positive = violated
      out.loss = out.loss + lambda[i] * slack.mean();
      out.add_sum(c.name + "_reward_sum", r);
      out.add_sum(c.name + "_slack_sum", slack);
      dual_->add(i, out.stats.back().second, b);  // stays on the device until the dual update
    }
    out.add_sum("kl_sum", roll.kl);
    out.add_value("grad_steps_sum", static_cast<double>(k) * b, roll.x0.device());
    out.add_value("count", b, roll.x0.device());
    return out;
  }

  std::map<std::string, double> end_step(int64_t step, dist::Comm& comm) override {
    auto record = dual_->end_step(step, comm);
    if (!record.empty()) {
      record["dual/rank_spread"] = rank_spread(comm);
      // each threshold in the reward's own units (= the threshold unless normalised), for evaluations of raw rewards
      for (size_t i = 0; i < constraints_.size(); ++i) {
        const auto row = static_cast<int64_t>(i);
        record["dual/" + constraints_[i].name + "/threshold_raw"] =
            norm_mean_[row].item<double>() + constraints_[i].threshold * norm_std_[row].item<double>();
      }
    }
    return record;
  }

  std::map<std::string, torch::Tensor> state() override {
    auto s = dual_->state();
    s["norm_mean"] = norm_mean_;
    s["norm_std"] = norm_std_;
    return s;
  }

 private:
  static std::vector<double> vec(const torch::Tensor& t) {
    auto c = t.contiguous();
    return {c.data_ptr<double>(), c.data_ptr<double>() + c.numel()};
  }

  // max over ranks and constraints of (max − min over ranks of λ_i): 0 when every rank holds the same duals (an
  // all-reduce of 2m doubles per dual update, logged so runs show it).
  double rank_spread(dist::Comm& comm) const {
    std::vector<double> v;
    for (double l : dual_->lambda()) {
      v.push_back(l);
      v.push_back(-l);
    }
    v = comm.all_reduce_doubles(v, dist::ReduceOp::max);
    double spread = 0;
    for (size_t i = 0; i < v.size(); i += 2) spread = std::max(spread, v[i] + v[i + 1]);
    return spread;
  }

  static diffusion::ScoreFn model_fn(models::ScoreModel& model, const data::Condition& cond) {
    return [&model, cond](const torch::Tensor& x, const torch::Tensor& t) { return model.forward(x, t, cond); };
  }

  // The rollout's model: conditional, or with method.guidance.scale > 1 classifier-free guided on [uncond; cond] in
  // one call (policy and reference alike, as the reference code guides the policy and its frozen copy).
  diffusion::ScoreFn model_fn(models::ScoreModel& model, const data::Batch& batch) const {
    if (guidance_scale_ <= 1) return model_fn(model, batch.cond);
    data::Condition uncond = batch.uncond;
    if (!uncond.text.defined() && batch.cond.class_id.defined() && model.num_classes() > 0)
      uncond.class_id = torch::full_like(batch.cond.class_id, model.num_classes());  // the null class
    if (!uncond.text.defined() && !uncond.class_id.defined())
      fail("config key '{}': guided rollouts need each row's unconditional branch: text data whose shards store the "
           "empty prompt's embedding (data_tools/pickapic_to_h5.py writes it), or class labels of a model with a null "
           "class; this batch has neither", guidance_key_);
    auto pair = data::Condition::concat(uncond, batch.cond);
    return diffusion::classifier_free_guidance_batched(model_fn(model, pair), guidance_scale_, guidance_rescale_);
  }

  void read_constraints(const config::Section& section, const torch::Device& device) {
    for (const auto& name : section.keys()) {
      auto s = section.section(name);
      Constraint c;
      c.name = name;
      c.reward_key = s.path("reward");
      c.reward = rewards::make_reward(s.section("reward"), device);
      c.threshold = s.get<double>("threshold");
      c.normalize = s.get<std::string>("normalize", "none");
      if (s.has("reference_mean")) c.given_mean = s.get<double>("reference_mean");
      if (s.has("reference_std")) c.given_std = s.get<double>("reference_std");
      s.finish();
      if (c.normalize != "none" && c.normalize != "mean" && c.normalize != "mean_std")
        fail("config key '{}': expected none, mean or mean_std, got '{}'", s.path("normalize"), c.normalize);
      if (!std::isfinite(c.threshold)) fail("config key '{}': must be a finite number", s.path("threshold"));
      if ((c.given_mean || c.given_std) && c.normalize == "none")
        fail("config key '{}': reference statistics are given but normalize is none", s.path("normalize"));
      if (c.given_std && !(*c.given_std > 0)) fail("config key '{}': must be > 0", s.path("reference_std"));
      constraints_.push_back(std::move(c));
    }
    if (constraints_.empty())
      fail("config key '{}': list at least one constraint, e.g. {{name: {{reward: {{kind: gmm_target, target: [2.5, 0]}}, "
           "threshold: -4}}}}",
           section.prefix());
  }

  // K for this micro-batch: fixed, or drawn from the batch seed (the same on every rank).
  int64_t draw_grad_steps(const data::Batch& batch) const {
    if (grad_steps_std_ <= 0) return grad_steps_;
    const auto n = static_cast<int64_t>(sampler_.timesteps().size());
    auto gen = at::make_generator<at::CPUGeneratorImpl>(derive_seed(batch.seed, "constrained/grad_steps"));
    for (int attempt = 0; attempt < 1000; ++attempt) {
      // a CPU generator's draw, read from host memory (no .item(): nothing on the device to wait for)
      const auto draw = at::normal(static_cast<double>(grad_steps_), grad_steps_std_, {1}, gen).to(torch::kFloat64);
      const auto k = static_cast<int64_t>(std::lround(draw.data_ptr<double>()[0]));
      if (k >= 1 && k <= n) return k;
    }
    return grad_steps_;
  }

  // Mean and std of each reward on reference samples: rank r scores its slice of one global set of draws.
  void estimate_normalization(int64_t n, uint64_t seed, dist::Comm* comm) {
    const int rank = comm ? comm->rank() : 0, world = comm ? comm->size() : 1;
    const int64_t start = n * rank / world, len = n * (rank + 1) / world - start;
    const auto shape = reference_->sample_shape();
    std::vector<int64_t> full{n};
    full.insert(full.end(), shape.begin(), shape.end());
    auto gen = at::make_generator<at::CPUGeneratorImpl>(derive_seed(seed, "constrained/normalization"));
    auto draw = [&] { return at::normal(0.0, 1.0, full, gen).narrow(0, start, len).to(device_); };
    auto x_T = draw();
    std::vector<torch::Tensor> noises;
    for (size_t i = 0; i < sampler_.timesteps().size(); ++i) noises.push_back(draw());

    torch::NoGradGuard no_grad;
    RolloutOptions o;
    o.grad_steps = 1;
    o.with_kl = false;
    auto ref = model_fn(*reference_, data::Condition{});
    auto roll = rollout(sampler_, schedule_, ref, ref, x_T, [&](size_t i) { return noises[i]; }, o);
    std::vector<double> sums;
    for (auto& c : constraints_) {
      auto r = c.reward->score(roll.x0, {}).to(torch::kFloat64);
      sums.push_back(r.sum().item<double>());
      sums.push_back(r.pow(2).sum().item<double>());
    }
    if (comm) sums = comm->all_reduce_doubles(sums);
    for (size_t i = 0; i < constraints_.size(); ++i) {
      const double mean = sums[2 * i] / static_cast<double>(n);
      const double var = std::max(sums[2 * i + 1] / static_cast<double>(n) - mean * mean, 0.0) * n / (n - 1.0);
      const auto& c = constraints_[i];
      if (c.normalize == "none") continue;
      if (!c.given_mean) norm_mean_[static_cast<int64_t>(i)] = mean;
      if (c.normalize == "mean_std" && !c.given_std) {
        if (!(var > 0)) fail("constraint '{}': reward has zero variance on the reference samples, cannot normalise", c.name);
        norm_std_[static_cast<int64_t>(i)] = std::sqrt(var);
      }
      log::info("constraint {}: reference reward mean {:.6g}, std {:.6g} ({} samples)", c.name, mean, std::sqrt(var), n);
    }
  }

  const diffusion::NoiseSchedule& schedule_;
  torch::Device device_;
  diffusion::DiscreteSampler sampler_;
  std::shared_ptr<models::ScoreModel> reference_;
  int64_t grad_steps_ = 1;
  double grad_steps_std_ = 0;
  double kl_weight_ = 1;
  double guidance_scale_ = 1, guidance_rescale_ = 0;
  std::string guidance_key_;
  RolloutOptions options_;
  std::vector<Constraint> constraints_;
  std::unique_ptr<dual::DualAscent> dual_;
  torch::Tensor norm_mean_, norm_std_;  // float64 [m]
};

}  // namespace

std::unique_ptr<Method> make_constrained(const config::Section& cfg, const MethodContext& ctx) {
  return std::make_unique<Constrained>(cfg, ctx);
}

}  // namespace dualign::methods
