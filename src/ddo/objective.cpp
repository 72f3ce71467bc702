#include "ddo/objective.h"

#include <cmath>

#include "util/error.h"

namespace dualign::ddo {

double log_normaliser(const torch::Tensor& f, dist::Comm* comm) {
  auto neg = -f.to(torch::kDouble);
  const int64_t n_local = neg.numel();
  const double m = max_all(comm, n_local ? neg.max().item<double>() : -INFINITY);
  const auto sums = sum_all(comm, {n_local ? (neg - m).exp().sum().item<double>() : 0.0, double(n_local)});
  return m + std::log(sums[0]) - std::log(sums[1]);
}

torch::Tensor tilt_weights(const torch::Tensor& f, dist::Comm* comm) {
  auto fd = f.to(torch::kDouble);
  const double n = sum_all(comm, double(fd.numel()));
  return (-fd - log_normaliser(fd, comm) - std::log(n)).exp();
}

double tilt_mean(const torch::Tensor& f, const torch::Tensor& values, dist::Comm* comm) {
  return sum_all(comm, (tilt_weights(f, comm) * values.to(torch::kDouble)).sum().item<double>());
}

TiltStats tilt_stats(const torch::Tensor& f, dist::Comm* comm) {
  auto fd = f.to(torch::kDouble);
  auto pi = tilt_weights(fd, comm);
  TiltStats s;
  s.log_z = log_normaliser(fd, comm);
  const auto sums = sum_all(comm, {(pi * (-fd)).sum().item<double>(), pi.pow(2).sum().item<double>()});
  s.kl = sums[0] - s.log_z;
  s.ess = 1.0 / sums[1];
  return s;
}

torch::Tensor bt_pair_loss(const torch::Tensor& delta, const torch::Tensor& labels, double beta_d) {
  auto logits = beta_d * delta;
  return -labels * torch::log_sigmoid(logits) - (1 - labels) * torch::log_sigmoid(-logits);
}

namespace {

Shard resolve(const Shard& shard, const torch::Tensor& r) {
  const Shard s = shard.total == 0 ? whole(r.numel()) : shard;
  DUALIGN_CHECK(s.count == r.numel(), "ddo objective: {} rewards on this rank, its shard holds {} samples", r.numel(),
                s.count);
  return s;
}

// p_ref/q at the reference samples, Z e^{f}, optionally capped (ObjectiveOptions::max_ratio).
torch::Tensor density_ratio(const torch::Tensor& fd, double log_z, double max_ratio) {
  auto ratio = (fd + log_z).exp();
  return max_ratio > 0 ? ratio.clamp_max(max_ratio) : ratio;
}

double global_mean(dist::Comm* comm, const Shard& s, const torch::Tensor& v) {
  return sum_all(comm, v.sum().item<double>()) / double(s.total);
}

class Rlhf : public Objective {
 public:
  Rlhf(torch::Tensor r, const Shard& shard, dist::Comm* comm)
      : r_(r.to(torch::kDouble)), shard_(resolve(shard, r_)), comm_(comm) {}
  std::string name() const override { return "rlhf"; }
  double value(const torch::Tensor& f) const override { return -tilt_mean(f, r_, comm_); }
  torch::Tensor first_variation(const torch::Tensor&) const override {
    return -(r_ - global_mean(comm_, shard_, r_));
  }

 private:
  torch::Tensor r_;
  Shard shard_;
  dist::Comm* comm_;
};

class Dpo : public Objective {
 public:
  Dpo(torch::Tensor r, double beta_d, int64_t partners, double max_ratio, const Shard& shard, dist::Comm* comm)
      : r_(r.to(torch::kDouble)), shard_(resolve(shard, r_)), comm_(comm), beta_d_(beta_d), max_ratio_(max_ratio),
        p_(partners) {
    const int64_t n = shard_.total, n_local = shard_.count;
    DUALIGN_CHECK(beta_d > 0, "dpo objective: beta_d must be > 0, got {}", beta_d);
    DUALIGN_CHECK(partners >= 2 && partners <= n, "dpo objective: partners must be in [2, {}] (reference samples), got {}",
                  n, partners);
    auto r_partners = gather_rows(comm_, shard_, r_).narrow(0, 0, p_);
    // Labels p(x_i, x_j) = σ(r_i − r_j) for partners j < P, and the mask of the diagonal pairs (global i = j).
    labels_ = torch::sigmoid(r_.unsqueeze(1) - r_partners.unsqueeze(0));  // [n_local, P]
    auto rows = torch::arange(shard_.begin, shard_.begin + n_local, torch::kLong).unsqueeze(1);
    offdiag_ = (rows != torch::arange(p_, torch::kLong).unsqueeze(0)).to(torch::kDouble);
    pairs_ = sum_all(comm_, offdiag_.sum().item<double>());
  }
  std::string name() const override { return "dpo"; }

  double value(const torch::Tensor& f) const override {
    auto loss = bt_pair_loss(delta(f), labels_, beta_d_);  // Δ(x_i, x_j) = f_j − f_i
    return sum_all(comm_, (loss * offdiag_).sum().item<double>()) / pairs_;
  }

  torch::Tensor first_variation(const torch::Tensor& f) const override {
    auto fd = f.to(torch::kDouble);
    auto inner = ((torch::sigmoid(beta_d_ * delta(fd)) - labels_) * offdiag_).sum(1) / offdiag_.sum(1);  // [n_local]
    auto g = 2 * beta_d_ * density_ratio(fd, log_normaliser(fd, comm_), max_ratio_) * inner;  // 2 β_d Z e^{f} E_x'[..]
    return g - global_mean(comm_, shard_, g);
  }

 private:
  torch::Tensor delta(const torch::Tensor& f) const {
    auto fd = f.to(torch::kDouble);
    auto partners = gather_rows(comm_, shard_, fd).narrow(0, 0, p_);
    return partners.unsqueeze(0) - fd.unsqueeze(1);  // [n_local, P]
  }
  torch::Tensor r_, labels_, offdiag_;
  Shard shard_;
  dist::Comm* comm_;
  double beta_d_, max_ratio_, pairs_ = 0;
  int64_t p_ = 0;
};

class Kto : public Objective {
 public:
  Kto(torch::Tensor r, const ObjectiveOptions& o, const Shard& shard, dist::Comm* comm)
      : shard_(resolve(shard, r)), comm_(comm), beta_k_(o.kto_beta), max_ratio_(o.max_ratio) {
    DUALIGN_CHECK(o.kto_beta > 0, "kto objective: kto_beta must be > 0, got {}", o.kto_beta);
    DUALIGN_CHECK(o.kto_desirable_weight >= 0 && o.kto_undesirable_weight >= 0,
                  "kto objective: the class weights must be >= 0, got {} and {}", o.kto_desirable_weight,
                  o.kto_undesirable_weight);
    auto rd = r.to(torch::kDouble);
    threshold_ = std::isnan(o.kto_threshold) ? gather_rows(comm_, shard_, rd).median().item<double>() : o.kto_threshold;
    auto desirable = rd >= threshold_;
    sign_ = desirable.to(torch::kDouble) * 2 - 1;
    auto dd = desirable.to(torch::kDouble);  // λ(x) in float64 (torch::where with scalars would round to float32)
    weight_ = dd * o.kto_desirable_weight + (1 - dd) * o.kto_undesirable_weight;
    desirable_fraction_ = global_mean(comm_, shard_, desirable.to(torch::kDouble));
    DUALIGN_CHECK(desirable_fraction_ > 0 && desirable_fraction_ < 1,
                  "kto objective: threshold {} leaves {}% of the reference samples desirable; need both classes",
                  threshold_, 100 * desirable_fraction_);
  }
  std::string name() const override { return "kto"; }
  double threshold() const { return threshold_; }

  double value(const torch::Tensor& f) const override {
    return global_mean(comm_, shard_, weight_ * (1 - values(f.to(torch::kDouble))));
  }

  torch::Tensor first_variation(const torch::Tensor& f) const override {
    auto fd = f.to(torch::kDouble);
    const double log_z = log_normaliser(fd, comm_);
    auto v = values(fd);
    auto slope = beta_k_ * weight_ * sign_ * v * (1 - v);  // λ β_k s v (1 − v)
    const double c = global_mean(comm_, shard_, slope);
    auto g = -slope * density_ratio(fd, log_z, max_ratio_) + c * (-fd - log_z);
    return g - global_mean(comm_, shard_, g);
  }

 private:
  torch::Tensor values(const torch::Tensor& fd) const {  // v_q(x_i)
    const double kl = tilt_stats(fd, comm_).kl;
    auto ell = -fd - log_normaliser(fd, comm_);
    return torch::sigmoid(beta_k_ * sign_ * (ell - kl));
  }
  Shard shard_;
  dist::Comm* comm_;
  double beta_k_, max_ratio_, threshold_ = 0, desirable_fraction_ = 0;
  torch::Tensor sign_, weight_;
};

}  // namespace

std::unique_ptr<Objective> make_rlhf_objective(torch::Tensor r, const Shard& shard, dist::Comm* comm) {
  return std::make_unique<Rlhf>(std::move(r), shard, comm);
}

std::unique_ptr<Objective> make_dpo_objective(torch::Tensor r, double beta_d, int64_t partners, const Shard& shard,
                                              dist::Comm* comm) {
  return std::make_unique<Dpo>(std::move(r), beta_d, partners, 0.0, shard, comm);
}

std::unique_ptr<Objective> make_objective(const ObjectiveOptions& o, torch::Tensor r, const Shard& shard,
                                          dist::Comm* comm) {
  if (o.name == "rlhf") return make_rlhf_objective(std::move(r), shard, comm);
  DUALIGN_CHECK(o.max_ratio >= 0, "ddo.max_ratio must be >= 0 (0: exact), got {}", o.max_ratio);
  if (o.name == "dpo") return std::make_unique<Dpo>(std::move(r), o.dpo_beta, o.partners, o.max_ratio, shard, comm);
  if (o.name == "kto") return std::make_unique<Kto>(std::move(r), o, shard, comm);
  fail("ddo.objective: expected rlhf, dpo or kto, got '{}'", o.name);
}

}  // namespace dualign::ddo
