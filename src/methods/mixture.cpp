// Mixture composition (OR) by dual training: see mixture.h for the Lagrangian, the per-sample weights and the
// constraint forms.
#include "methods/mixture.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "config/config.h"
#include "dist/comm.h"
#include "dist/host_sync.h"
#include "methods/preference.h"
#include "util/error.h"

namespace dualign::methods {
namespace {

std::vector<double> per_group(const config::Section& cfg, const std::string& key, int64_t m, double fallback) {
  if (!cfg.has(key)) return std::vector<double>(static_cast<size_t>(m), fallback);
  if (!cfg.node()[key].IsSequence()) return std::vector<double>(static_cast<size_t>(m), cfg.get<double>(key));
  auto v = cfg.get<std::vector<double>>(key);
  if (static_cast<int64_t>(v.size()) != m)
    fail("config key '{}': {} values for {} groups (method.groups)", cfg.path(key), v.size(), m);
  return v;
}

// Per-sample ‖ε − ε̂‖² summed over elements, with ‖ε‖² replaced by its expectation (the number of elements):
// E‖ε − ε̂‖² = D − 2E[ε·ε̂] + E‖ε̂‖² exactly, since ε is drawn independently of x_0 and t, and at small t, where
// the model cannot predict ε and the ELBO weight is largest, this removes most of the χ² noise.
torch::Tensor eps_error(const torch::Tensor& eps, const torch::Tensor& eps_hat) {
  const auto d = static_cast<double>(eps[0].numel());
  return d - 2 * (eps * eps_hat).flatten(1).sum(1) + eps_hat.pow(2).flatten(1).sum(1);
}

}  // namespace

MixtureSettings MixtureSettings::read(const config::Section& cfg) {
  MixtureSettings s;
  s.groups = cfg.get<int64_t>("groups");
  if (s.groups < 2) fail("config key '{}': a mixture needs at least 2 groups, got {}", cfg.path("groups"), s.groups);
  const auto m = static_cast<size_t>(s.groups);
  s.names = cfg.get<std::vector<std::string>>("group_names", {});
  if (s.names.empty())
    for (size_t i = 0; i < m; ++i) s.names.push_back("group" + std::to_string(i));
  if (s.names.size() != m)
    fail("config key '{}': {} names for {} groups", cfg.path("group_names"), s.names.size(), s.groups);
  if (cfg.has("group_frequency")) {
    s.frequency = cfg.get<std::vector<double>>("group_frequency");
    if (s.frequency.size() != m)
      fail("config key '{}': {} frequencies for {} groups", cfg.path("group_frequency"), s.frequency.size(), s.groups);
    for (double p : s.frequency)
      if (!(p > 0) || !std::isfinite(p))
        fail("config key '{}': frequencies (or counts) must be finite and > 0", cfg.path("group_frequency"));
    const double total = std::accumulate(s.frequency.begin(), s.frequency.end(), 0.0);
    for (double& p : s.frequency) p /= total;  // counts are accepted too
  }
  s.weighting = cfg.get<std::string>("weighting", s.weighting);
  s.constraint = cfg.get<std::string>("constraint", s.constraint);
  s.estimate = cfg.get<std::string>("estimate", s.estimate);
  s.thresholds = per_group(cfg, "thresholds", s.groups, 0.0);
  s.reference_dtype = cfg.get<std::string>("reference_dtype", s.reference_dtype);
  s.baseline_decay = cfg.get<double>("baseline_decay", s.baseline_decay);
  s.elbo_t_min = cfg.get<int64_t>("elbo_t_min", s.elbo_t_min);
  if (s.elbo_t_min < 0) fail("config key '{}': must be >= 0, got {}", cfg.path("elbo_t_min"), s.elbo_t_min);
  if (s.baseline_decay < 0 || s.baseline_decay >= 1)
    fail("config key '{}': must be in [0, 1) (0 disables the baseline), got {}", cfg.path("baseline_decay"),
         s.baseline_decay);
  if (s.weighting != "frequency" && s.weighting != "batch")
    fail("config key '{}': expected frequency or batch, got '{}'", cfg.path("weighting"), s.weighting);
  if (s.constraint != "cross_entropy" && s.constraint != "kl" && s.constraint != "class_frequency")
    fail("config key '{}': expected cross_entropy, kl or class_frequency, got '{}'", cfg.path("constraint"),
         s.constraint);
  if (s.estimate != "elbo" && s.estimate != "mse")
    fail("config key '{}': expected elbo or mse, got '{}'", cfg.path("estimate"), s.estimate);
  if (s.constraint == "kl" && s.estimate != "elbo")
    fail("config key '{}': constraint kl adds log p_i in nats, so it needs estimate: elbo", cfg.path("estimate"));
  if (s.frequency.empty() && (s.weighting == "frequency" || s.constraint == "kl"))
    fail("config key '{}' is required with weighting: frequency or constraint: kl (the share, or the count, of "
         "each group in the training data)", cfg.path("group_frequency"));
  if (!cfg.has("dual")) fail("config section '{}' is missing (projection, lr, every, ...)", cfg.path("dual"));
  s.dual = dual::DualSettings::read(cfg.section("dual"), m);
  // Read (and checked) whenever present, so one experiment can switch constraints from the command line.
  if (cfg.has("class_frequency")) s.class_frequency = ClassFrequencySettings::read(cfg.section("class_frequency"), s.groups);
  if (s.constraint == "class_frequency" && !cfg.has("class_frequency"))
    fail("config section '{}' is missing (classifier, samples, steps, ...): constraint class_frequency labels the "
         "policy's samples with it", cfg.path("class_frequency"));
  return s;
}

torch::Tensor mixture_weights(const torch::Tensor& lambda, const torch::Tensor& group, const std::string& weighting,
                              const std::vector<double>& frequency, const torch::Tensor& global_counts,
                              int64_t global_size) {
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(group.device());
  const auto lam = lambda.to(f64);
  torch::Tensor per_group;
  if (weighting == "frequency") {
    DUALIGN_CHECK(frequency.size() == static_cast<size_t>(lam.numel()), "mixture: {} frequencies for {} groups",
                  frequency.size(), lam.numel());
    per_group = lam / (static_cast<double>(global_size) * torch::tensor(frequency, torch::kFloat64).to(f64));
  } else if (weighting == "batch") {
    const auto counts = global_counts.to(f64);
    per_group = torch::where(counts > 0, lam / counts.clamp_min(1), torch::zeros_like(lam));
  } else {
    fail("mixture: unknown weighting '{}'", weighting);
  }
  return per_group.index_select(0, group).to(torch::kFloat32);
}

torch::Tensor elbo_weights(const diffusion::NoiseSchedule& schedule) {
  auto beta = schedule.betas().to(torch::kFloat64);
  auto alpha = schedule.alphas().to(torch::kFloat64);
  auto abar = schedule.alphas_cumprod().to(torch::kFloat64);
  const int64_t T = schedule.num_train_timesteps();
  // 1 − ᾱ_{t−1}, with the decoder term at t = 0 (x_0 − μ̂ = √β_0 (ε̂ − ε) / √α_0): use β_0 there.
  auto prev = torch::cat({beta.narrow(0, 0, 1), 1 - abar.narrow(0, 0, T - 1)});
  return static_cast<double>(T) * beta / (2 * alpha * prev);
}

namespace {

class Mixture : public Method {
 public:
  Mixture(MixtureSettings s, const MethodContext& ctx, const config::Section& cfg)
      : s_(std::move(s)),
        schedule_(ctx.schedule),
        device_(ctx.device),
        comm_(ctx.comm),
        duals_(s_.names, s_.dual),
        elbo_w_(elbo_weights(ctx.schedule).to(torch::kFloat32)) {
    const int64_t T = ctx.schedule.num_train_timesteps();
    if (s_.elbo_t_min >= T)
      fail("config key '{}': must be below the {} diffusion timesteps, got {}", cfg.path("elbo_t_min"), T,
           s_.elbo_t_min);
    elbo_w_.narrow(0, 0, s_.elbo_t_min).zero_();  // the ELBO of the data noised to level t_min
    elbo_w_ = elbo_w_.to(ctx.device);
    const auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(ctx.device);
    baseline_ = torch::zeros({T}, f64);
    baseline_seen_ = torch::zeros({T}, f64);
    base_sum_ = torch::zeros({T}, f64);
    base_count_ = torch::zeros({T}, f64);
    bad_groups_ = torch::zeros({}, f64.dtype(torch::kInt64));
    thresholds_ = torch::tensor(s_.thresholds, torch::kFloat64).to(torch::kFloat32).to(ctx.device);
    if (!s_.frequency.empty())
      log_frequency_ = torch::tensor(s_.frequency, torch::kFloat64).log().to(torch::kFloat32).to(ctx.device);
    if (s_.constraint == "kl") reference_ = frozen_reference(ctx, s_.reference_dtype, cfg.path("reference_dtype"));
    if (s_.constraint == "class_frequency")
      probe_ = std::make_unique<ClassFrequencyProbe>(s_.class_frequency, ctx.schedule, ctx.device, s_.frequency,
                                                     cfg.path("class_frequency"));
  }
  std::string name() const override { return "mixture"; }

  LossOutput loss(models::ScoreModel& policy, const data::Batch& batch) override {
    DUALIGN_CHECK(batch.group.defined(), "method mixture needs group ids: data.groups (kind gmm) or data.group: "
                                         "class (kind h5)");
    if (!probe_) check_window(batch);
    const int64_t n = batch.local_size();
    auto x0 = batch.x;
    auto eps = data::draw_global_normal(batch, "mixture/eps", x0.sizes().slice(1), device_);
    auto t = data::draw_global_int(batch, "mixture/t", schedule_.num_train_timesteps(), device_);
    auto x_t = schedule_.add_noise(x0, eps, t);
    auto out = policy.forward(x_t, t, batch.cond);
    auto mse = (out - schedule_.target(x0, eps, t)).pow(2).flatten(1).mean(1);  // [n], with gradients

    // Primal: Σ_j w_j mse_j over the global micro-batch; this rank returns its part × world size, since the
    // gradient sync averages over ranks. Counts and weights stay on the device (no host sync).
    const auto group = checked_group(batch.group);
    const auto counts = group_counts(group);
    auto lambda = torch::tensor(duals_.lambda(), torch::kFloat64);
    auto w = mixture_weights(lambda, group, s_.weighting, s_.frequency, counts.global, batch.global_size);
    const double ranks = static_cast<double>(batch.global_size) / static_cast<double>(n);
    auto loss = (w * mse).sum() * ranks;

    LossOutput result{loss, {}};
    for (int64_t g = 0; g < s_.groups; ++g)  // logged as train/<name>_share
      result.stats.emplace_back(s_.names[static_cast<size_t>(g)] + "_share_sum", counts.local[g]);
    result.add_value("count", static_cast<double>(n), device_);

    if (probe_) {
      add_class_frequency(policy, batch);
      return result;
    }
    // Dual: per-sample constraint values, summed per group into the dual ascent window.
    auto value = constraint_value(policy, out.detach(), mse.detach(), x_t, eps, t, batch, group).to(torch::kFloat64);
    if (s_.baseline_decay > 0) {
      // A per-timestep baseline common to all groups shifts every group mean by the same E_t b(t) (t is drawn
      // independently of the group), which the projection ignores; it removes the large spread of the values
      // over t. The baseline only changes at dual updates, from all-reduced sums: the same on every rank.
      base_sum_.index_add_(0, t, value);
      base_count_.index_add_(0, t, torch::ones_like(value));
      value = value - baseline_.index_select(0, t);
    }
    duals_.add_all(torch::zeros_like(counts.local).index_add_(0, group, value), counts.local);
    return result;
  }

  std::map<std::string, double> end_step(int64_t step, dist::Comm& comm) override {
    if (step % s_.dual.every == 0) {  // with the dual update's read of the window: one host read per update
      const auto bad = dist::to_host(bad_groups_).item<int64_t>();
      if (bad > 0)
        fail("mixture: {} samples before step {} have group ids outside [0, {}) (method.groups = {}): check the "
             "data's group ids (data.groups, data.group) against method.groups", bad, step, s_.groups, s_.groups);
    }
    auto record = duals_.end_step(step, comm);
    if (!record.empty() && s_.baseline_decay > 0 && !probe_) update_baseline(comm);
    if (!record.empty()) record["dual/rank_spread"] = rank_spread(comm);
    return record;
  }
  std::map<std::string, torch::Tensor> state() override {
    auto st = duals_.state();
    st["baseline"] = baseline_;
    st["baseline_seen"] = baseline_seen_;
    return st;
  }

 private:
  // Group ids clamped into [0, m) for indexing; the number outside is kept on the device and checked at the next
  // dual update (reading it here would be a host sync in every micro-step).
  torch::Tensor checked_group(const torch::Tensor& group) {
    bad_groups_.add_(((group < 0) | (group >= s_.groups)).sum());
    return group.clamp(0, s_.groups - 1);
  }

  struct Counts {
    torch::Tensor local, global;  // float64 [m] on the device
  };
  Counts group_counts(const torch::Tensor& group) {
    Counts c;
    // index_add_, not bincount: CUDA's bincount reads the largest id on the host.
    c.local = torch::zeros({s_.groups}, torch::TensorOptions().dtype(torch::kFloat64).device(group.device()))
                  .index_add_(0, group, torch::ones({group.size(0)}, torch::TensorOptions().dtype(torch::kFloat64).device(group.device())));
    c.global = c.local;
    // Only the batch weighting needs the global counts within the step (one tiny device all-reduce per micro-batch).
    if (s_.weighting == "batch" && comm_) {
      c.global = c.local.clone();
      comm_->all_reduce(c.global);
    }
    return c;
  }

  // max over groups of (max − min over ranks) of λ: 0 when every rank holds the same duals (logged, and
  // checked by the tests under mpirun). One tiny collective per dual update.
  double rank_spread(dist::Comm& comm) {
    auto lam = duals_.lambda();
    std::vector<double> both(lam);
    for (double l : lam) both.push_back(-l);
    both = comm.all_reduce_doubles(both, dist::ReduceOp::max);
    double spread = 0;
    for (size_t i = 0; i < lam.size(); ++i) spread = std::max(spread, both[i] + both[lam.size() + i]);
    return spread;
  }

  void update_baseline(dist::Comm& comm) {
    const int64_t T = baseline_.size(0);
    auto global = torch::cat({base_sum_, base_count_});
    comm.all_reduce(global);
    auto sums = global.narrow(0, 0, T), counts = global.narrow(0, T, T);
    auto mean = sums / counts.clamp_min(1);
    auto has = counts > 0;
    // First samples of a timestep set its baseline; later windows move it by an EMA.
    auto blended = torch::where(baseline_seen_ > 0, s_.baseline_decay * baseline_ + (1 - s_.baseline_decay) * mean, mean);
    baseline_.copy_(torch::where(has, blended, baseline_));
    baseline_seen_.copy_(torch::where(has, torch::ones_like(baseline_seen_), baseline_seen_));
    base_sum_.zero_();
    base_count_.zero_();
  }

  // constraint class_frequency: at the first micro-batch of the last step of each dual window, label the
  // policy's samples and add target_g − 1{label = g} for every sample to group g (mean: target_g − f_g).
  void add_class_frequency(models::ScoreModel& policy, const data::Batch& batch) {
    if (batch.micro != 0 || (batch.step + 1) % s_.dual.every != 0) return;
    const int rank = comm_ ? comm_->rank() : 0, world = comm_ ? comm_->size() : 1;
    auto counts = probe_->count(policy, batch, rank, world).to(device_, torch::kFloat64);
    auto n = counts.sum();  // 0 when this rank drew no samples (more ranks than samples): adds nothing
    auto target = torch::tensor(s_.class_frequency.target, torch::kFloat64).to(device_);
    duals_.add_all(target * n - counts, n.expand({s_.groups}));
  }

  // The per-sample value whose group mean is the constraint estimate g_i (see mixture.h).
  torch::Tensor constraint_value(models::ScoreModel& policy, const torch::Tensor& out, const torch::Tensor& mse,
                                 const torch::Tensor& x_t, const torch::Tensor& eps, const torch::Tensor& t,
                                 const data::Batch& batch, const torch::Tensor& group) {
    torch::NoGradGuard no_grad;
    auto per_sample = [&](const torch::Tensor& model_out, const torch::Tensor& model_mse) {
      if (s_.estimate == "mse") return model_mse;
      return elbo_w_.index_select(0, t) * eps_error(eps, schedule_.predict_eps(x_t, model_out.to(torch::kFloat32), t));
    };
    auto v = per_sample(out, mse);
    if (s_.constraint == "kl") {
      auto ref_out = reference_->forward(x_t, t, batch.cond).to(torch::kFloat32);
      auto ref_mse = (ref_out - schedule_.target(batch.x, eps, t)).pow(2).flatten(1).mean(1);
      v = v - per_sample(ref_out, ref_mse);
      v = v - log_frequency_.index_select(0, group);
    }
    return v - thresholds_.index_select(0, group);
  }

  // Every group must appear in every dual window, else DualAscent cannot form its estimate: fail early with
  // the numbers when the configuration makes a gap likely.
  void check_window(const data::Batch& batch) {
    if (window_checked_ || s_.frequency.empty()) return;
    window_checked_ = true;
    const double p_min = *std::min_element(s_.frequency.begin(), s_.frequency.end());
    const double expected = static_cast<double>(batch.global_size * s_.dual.every) * p_min;
    if (expected < 10)
      fail("method mixture: only {:.1f} samples of the rarest group are expected per dual update (global micro-batch "
           "{} x method.dual.every {} x share {:.4f}); raise method.dual.every to at least {}",
           expected, batch.global_size, s_.dual.every, p_min,
           static_cast<int64_t>(std::ceil(10.0 / (static_cast<double>(batch.global_size) * p_min))));
  }

  MixtureSettings s_;
  const diffusion::NoiseSchedule& schedule_;
  torch::Device device_;
  dist::Comm* comm_;
  dual::DualAscent duals_;
  torch::Tensor elbo_w_;
  torch::Tensor baseline_, baseline_seen_;  // per timestep, float64 [T], checkpointed
  torch::Tensor base_sum_, base_count_;     // this rank's window, cleared at each dual update
  torch::Tensor bad_groups_;                // int64 scalar: group ids outside [0, m) since the start
  torch::Tensor thresholds_, log_frequency_;  // float32 [m] on the device (log_frequency_: with group_frequency)
  std::shared_ptr<models::ScoreModel> reference_;
  std::unique_ptr<ClassFrequencyProbe> probe_;  // constraint class_frequency
  bool window_checked_ = false;
};

}  // namespace

std::unique_ptr<Method> make_mixture(const config::Section& cfg, const MethodContext& ctx) {
  return std::make_unique<Mixture>(MixtureSettings::read(cfg), ctx, cfg);
}

}  // namespace dualign::methods
