#include "dual/dual_ascent.h"

#include <algorithm>
#include <cmath>

#include "config/config.h"
#include "dist/comm.h"
#include "dist/host_sync.h"
#include "dual/projection.h"
#include "util/error.h"

namespace dualign::dual {
namespace {

std::vector<double> to_vector(const torch::Tensor& t) {
  auto c = t.contiguous();
  return {c.data_ptr<double>(), c.data_ptr<double>() + c.numel()};
}

torch::Tensor to_tensor(const std::vector<double>& v) {
  return torch::tensor(v, torch::dtype(torch::kFloat64));
}

}  // namespace

DualSettings DualSettings::read(const config::Section& section, size_t m) {
  DualSettings s;
  s.projection = section.get<std::string>("projection", s.projection);
  if (section.has("init") && section.node()["init"].IsSequence()) {
    s.init = section.get<std::vector<double>>("init");
    if (s.init.size() != m)
      fail("config key '{}': {} initial dual variables for {} constraints", section.path("init"), s.init.size(), m);
  } else {
    s.init.assign(m, section.get<double>("init", s.projection == "simplex" ? 1.0 / static_cast<double>(m) : 0.0));
  }
  s.lr = section.get<double>("lr", s.lr);
  s.lr_decay = section.get<double>("lr_decay", s.lr_decay);
  s.warmup_updates = section.get<int64_t>("warmup_updates", s.warmup_updates);
  s.slack_ema = section.get<double>("slack_ema", s.slack_ema);
  s.every = section.get<int64_t>("every", s.every);
  s.controller = section.get<std::string>("controller", s.controller);
  if (s.controller != "ascent" && s.controller != "nupi")
    fail("config key '{}': unknown dual controller '{}' (expected ascent or nupi)", section.path("controller"), s.controller);
  s.kp = section.get<double>("kp", s.kp);
  s.nu = section.get<double>("nu", s.nu);
  if (s.kp < 0) fail("config key '{}': must be >= 0, got {}", section.path("kp"), s.kp);
  if (s.kp > 0 && s.controller != "nupi")
    fail("config key '{}': a proportional gain needs controller: nupi (got controller: {})", section.path("kp"), s.controller);
  if (s.nu < 0 || s.nu >= 1) fail("config key '{}': must be in [0, 1), got {}", section.path("nu"), s.nu);
  if (s.lr < 0) fail("config key '{}': must be >= 0, got {}", section.path("lr"), s.lr);
  if (s.every < 1) fail("config key '{}': must be >= 1, got {}", section.path("every"), s.every);
  if (s.slack_ema < 0 || s.slack_ema >= 1)
    fail("config key '{}': must be in [0, 1), got {}", section.path("slack_ema"), s.slack_ema);
  for (double l : s.init)
    if (!std::isfinite(l) || l < 0) fail("config key '{}': dual variables must be finite and >= 0", section.path("init"));
  ascend(s.projection, s.init, std::vector<double>(m, 0.0));  // validates the projection name
  section.finish();
  return s;
}

DualAscent::DualAscent(std::vector<std::string> names, DualSettings settings)
    : names_(std::move(names)), s_(std::move(settings)) {
  if (names_.empty()) fail("dual ascent needs at least one constraint");
  if (s_.init.size() != names_.size())
    fail("dual ascent: {} initial values for {} constraints", s_.init.size(), names_.size());
  sums_.assign(names_.size(), 0.0);
  counts_.assign(names_.size(), 0.0);
  lambda_ = to_tensor(s_.init);
  ema_ = torch::zeros({static_cast<int64_t>(names_.size())}, torch::kFloat64);
  updates_ = torch::zeros({}, torch::kInt64);
  pi_xi_ = torch::zeros({static_cast<int64_t>(names_.size())}, torch::kFloat64);
}

void DualAscent::add(size_t i, double sum, double count) {
  if (i >= names_.size()) fail("dual ascent: constraint index {} out of range ({} constraints)", i, names_.size());
  sums_[i] += sum;
  counts_[i] += count;
}

void DualAscent::start_device_window(const torch::Tensor& like) {
  if (device_sums_.defined()) return;
  device_sums_ = torch::zeros({static_cast<int64_t>(names_.size())}, like.options().dtype(torch::kFloat64));
  device_counts_ = torch::zeros_like(device_sums_);
}

void DualAscent::add(size_t i, const torch::Tensor& sum, double count) {
  if (i >= names_.size()) fail("dual ascent: constraint index {} out of range ({} constraints)", i, names_.size());
  if (sum.numel() != 1) fail("dual ascent: the sum of constraint '{}' must have one element, got {}", names_[i], sum.numel());
  start_device_window(sum);
  device_sums_.select(0, static_cast<int64_t>(i)).add_(sum.detach().reshape({}).to(torch::kFloat64));
  counts_[i] += count;
}

void DualAscent::add_all(const torch::Tensor& sums, const torch::Tensor& counts) {
  const auto m = static_cast<int64_t>(names_.size());
  if (sums.numel() != m || counts.numel() != m)
    fail("dual ascent: {} sums and {} counts for {} constraints", sums.numel(), counts.numel(), m);
  start_device_window(sums);
  device_sums_.add_(sums.detach().reshape({m}).to(torch::kFloat64));
  device_counts_.add_(counts.detach().reshape({m}).to(torch::kFloat64));
}

std::map<std::string, double> DualAscent::end_step(int64_t step, dist::Comm& comm) {
  if (step % s_.every != 0) return {};
  const size_t m = names_.size();
  if (device_sums_.defined()) {  // the one host sync of the window
    const auto on_device = dist::to_host_doubles(torch::cat({device_sums_, device_counts_}));
    for (size_t i = 0; i < m; ++i) {
      sums_[i] += on_device[i];
      counts_[i] += on_device[m + i];
    }
    device_sums_.zero_();
    device_counts_.zero_();
  }
  std::vector<double> window(sums_);
  window.insert(window.end(), counts_.begin(), counts_.end());
  window = comm.all_reduce_doubles(window);
  std::fill(sums_.begin(), sums_.end(), 0.0);
  std::fill(counts_.begin(), counts_.end(), 0.0);

  const int64_t k = updates_.item<int64_t>() + 1;
  double lr = s_.lr * std::pow(s_.lr_decay, static_cast<double>(k - 1));
  if (s_.warmup_updates > 0) lr *= std::min(1.0, static_cast<double>(k) / static_cast<double>(s_.warmup_updates));
  const double kp = s_.lr > 0 ? s_.kp * lr / s_.lr : 0.0;  // the proportional gain follows η's warm-up and decay
  std::vector<double> value(m), smoothed = to_vector(ema_), xi = to_vector(pi_xi_), step_vec(m, 0.0);
  for (size_t i = 0; i < m; ++i) {
    if (window[m + i] <= 0) fail("dual ascent: no samples of constraint '{}' in the {} steps before step {}", names_[i], s_.every, step);
    value[i] = window[i] / window[m + i];
    if (!std::isfinite(value[i])) fail("dual ascent: constraint '{}' estimate is not finite at step {}", names_[i], step);
    smoothed[i] = (s_.slack_ema > 0 && k > 1) ? s_.slack_ema * smoothed[i] + (1 - s_.slack_ema) * value[i] : value[i];
    step_vec[i] = lr * smoothed[i];
    if (s_.controller == "nupi") {
      const double xi_next = s_.nu * xi[i] + (1 - s_.nu) * smoothed[i];
      step_vec[i] += kp * (xi_next - xi[i]);
      xi[i] = xi_next;
    }
  }
  lambda_.copy_(to_tensor(ascend(s_.projection, to_vector(lambda_), step_vec)));
  ema_.copy_(to_tensor(smoothed));
  pi_xi_.copy_(to_tensor(xi));
  updates_.fill_(k);

  std::map<std::string, double> out;
  const auto lam = to_vector(lambda_);
  for (size_t i = 0; i < m; ++i) {
    out["dual/" + names_[i] + "/lambda"] = lam[i];
    out["dual/" + names_[i] + "/value"] = value[i];
    if (s_.slack_ema > 0) out["dual/" + names_[i] + "/ema"] = smoothed[i];
  }
  out["dual/lr"] = lr;
  return out;
}

std::vector<double> DualAscent::lambda() const { return to_vector(lambda_); }

std::map<std::string, torch::Tensor> DualAscent::state() {
  std::map<std::string, torch::Tensor> s{{"lambda", lambda_}, {"slack_ema", ema_}, {"updates", updates_}};
  if (s_.controller == "nupi") s["pi_xi"] = pi_xi_;  // only then: ascent checkpoints keep their keys
  return s;
}

}  // namespace dualign::dual
