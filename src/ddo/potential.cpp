#include "ddo/potential.h"

#include <cmath>

#include "util/error.h"

namespace dualign::ddo {

PotentialImpl::PotentialImpl(const PotentialOptions& o) {
  DUALIGN_CHECK(o.dim >= 1 && o.hidden >= 1 && o.depth >= 1, "potential: dim, hidden and depth must be >= 1 (got {}, {}, {})",
                o.dim, o.hidden, o.depth);
  net_ = torch::nn::Sequential();
  int64_t in = o.dim;
  for (int64_t i = 0; i < o.depth; ++i) {
    net_->push_back(torch::nn::Linear(in, o.hidden));
    net_->push_back(torch::nn::SiLU());
    in = o.hidden;
  }
  last_ = torch::nn::Linear(in, 1);
  torch::NoGradGuard no_grad;
  last_->weight.zero_();  // f starts at 0: q_1 = p_ref
  last_->bias.zero_();
  net_->push_back(last_);
  register_module("net", net_);
  out_mean_ = register_buffer("out_mean", torch::zeros({}));
  out_scale_ = register_buffer("out_scale", torch::ones({}));
}

torch::Tensor PotentialImpl::forward(const torch::Tensor& x) {
  return out_mean_ + out_scale_ * net_->forward(x).squeeze(-1);
}

void PotentialImpl::rescale_output(double scale) {
  // m + s (W h + b) = scale (W' h + b')  with  W' = s W / scale,  b' = (m + s b) / scale.
  torch::NoGradGuard no_grad;
  const double m = out_mean_.item<double>(), s = out_scale_.item<double>();
  last_->weight.mul_(s / scale);
  last_->bias.mul_(s / scale).add_(m / scale);
  out_mean_.fill_(0.0);
  out_scale_.fill_(scale);
}

FitResult fit_potential(Potential& f, const torch::Tensor& x, const torch::Tensor& target, const FitOptions& o) {
  DUALIGN_CHECK(x.dim() == 2 && target.dim() == 1 && x.size(0) == target.size(0),
                "fit_potential: expected x [N, D] and target [N], got {} and {}", c10::str(x.sizes()),
                c10::str(target.sizes()));
  DUALIGN_CHECK(o.steps >= 0 && o.batch >= 1 && o.lr > 0, "fit_potential: steps >= 0, batch >= 1 and lr > 0 required");
  auto y = (target - target.mean()).to(torch::kFloat32);
  const double std = y.std(false).item<double>();
  const double scale = std > 1e-12 ? std : 1.0;
  f->rescale_output(scale);  // warm start: the same function, output scaled like the new targets
  const auto device = x.device();
  torch::optim::Adam opt(f->parameters(), torch::optim::AdamOptions(o.lr));
  auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  const int64_t n = x.size(0);
  for (int64_t step = 0; step < o.steps; ++step) {
    torch::Tensor xb = x, yb = y;
    if (n > o.batch) {
      auto idx = torch::randint(n, {o.batch}, gen, torch::kLong).to(device);
      xb = x.index_select(0, idx);
      yb = y.index_select(0, idx);
    }
    auto loss = (f->forward(xb) / scale - yb / scale).pow(2).mean();
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  torch::NoGradGuard no_grad;
  auto pred = f->forward(x);
  auto resid = pred - pred.mean() - y;
  return {resid.pow(2).mean().sqrt().item<double>(), std};
}

}  // namespace dualign::ddo
