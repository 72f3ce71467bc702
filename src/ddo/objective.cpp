#include "ddo/objective.h"

#include <cmath>

#include "util/error.h"

namespace dualign::ddo {

torch::Tensor tilt_weights(const torch::Tensor& f) { return torch::softmax(-f.to(torch::kDouble), 0); }

TiltStats tilt_stats(const torch::Tensor& f) {
  auto fd = f.to(torch::kDouble);
  const double n = double(fd.numel());
  auto pi = tilt_weights(fd);
  TiltStats s;
  s.log_z = (torch::logsumexp(-fd, 0).item<double>() - std::log(n));
  s.kl = (pi * (-fd)).sum().item<double>() - s.log_z;
  s.ess = 1.0 / pi.pow(2).sum().item<double>();
  return s;
}

namespace {

class Rlhf : public Objective {
 public:
  explicit Rlhf(torch::Tensor r) : r_(r.to(torch::kDouble)) {}
  std::string name() const override { return "rlhf"; }
  double value(const torch::Tensor& f) const override { return -(tilt_weights(f) * r_).sum().item<double>(); }
  torch::Tensor first_variation(const torch::Tensor&) const override { return -(r_ - r_.mean()); }

 private:
  torch::Tensor r_;
};

class Dpo : public Objective {
 public:
  Dpo(torch::Tensor r, double beta_d, int64_t partners) : r_(r.to(torch::kDouble)), beta_d_(beta_d) {
    const int64_t n = r_.numel();
    DUALIGN_CHECK(beta_d > 0, "dpo objective: beta_d must be > 0, got {}", beta_d);
    DUALIGN_CHECK(partners >= 2 && partners <= n, "dpo objective: partners must be in [2, {}] (reference samples), got {}",
                  n, partners);
    p_ = partners;
    // Labels p(x_i, x_j) = σ(r_i − r_j) for partners j < P, and the mask of the diagonal pairs (i = j).
    labels_ = torch::sigmoid(r_.unsqueeze(1) - r_.narrow(0, 0, p_).unsqueeze(0));  // [N, P]
    offdiag_ = torch::ones({n, p_}, torch::kDouble);
    offdiag_.narrow(0, 0, p_).fill_diagonal_(0.0);
  }
  std::string name() const override { return "dpo"; }

  double value(const torch::Tensor& f) const override {
    auto logits = beta_d_ * delta(f);  // β_d Δ(x_i, x_j) = β_d (f_j − f_i)
    auto loss = -labels_ * torch::log_sigmoid(logits) - (1 - labels_) * torch::log_sigmoid(-logits);
    return ((loss * offdiag_).sum() / offdiag_.sum()).item<double>();
  }

  torch::Tensor first_variation(const torch::Tensor& f) const override {
    auto fd = f.to(torch::kDouble);
    auto inner = ((torch::sigmoid(beta_d_ * delta(fd)) - labels_) * offdiag_).sum(1) / offdiag_.sum(1);  // [N]
    const double log_z = torch::logsumexp(-fd, 0).item<double>() - std::log(double(fd.numel()));
    auto g = 2 * beta_d_ * (fd + log_z).exp() * inner;  // 2 β_d Z e^{f(y)} E_x'[...]
    return g - g.mean();
  }

 private:
  torch::Tensor delta(const torch::Tensor& f) const {
    auto fd = f.to(torch::kDouble);
    return fd.narrow(0, 0, p_).unsqueeze(0) - fd.unsqueeze(1);  // [N, P]
  }
  torch::Tensor r_, labels_, offdiag_;
  double beta_d_;
  int64_t p_ = 0;
};

}  // namespace

std::unique_ptr<Objective> make_rlhf_objective(torch::Tensor r) { return std::make_unique<Rlhf>(std::move(r)); }

std::unique_ptr<Objective> make_dpo_objective(torch::Tensor r, double beta_d, int64_t partners) {
  return std::make_unique<Dpo>(std::move(r), beta_d, partners);
}

std::unique_ptr<Objective> make_objective(const std::string& name, torch::Tensor r, double beta_d, int64_t partners) {
  if (name == "rlhf") return make_rlhf_objective(std::move(r));
  if (name == "dpo") return make_dpo_objective(std::move(r), beta_d, partners);
  fail("--objective: expected rlhf or dpo, got '{}'", name);
}

}  // namespace dualign::ddo
