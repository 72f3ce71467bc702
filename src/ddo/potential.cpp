#include "ddo/potential.h"

#include <cmath>

#include "dist/comm.h"
#include "util/error.h"

namespace dualign::ddo {

PotentialImpl::PotentialImpl(const PotentialOptions& o) {
  DUALIGN_CHECK(!o.sample_shape.empty() && o.hidden >= 1 && o.depth >= 1 && o.channels >= 1,
                "potential: a sample shape, hidden, depth and channels >= 1 required (got {}, {}, {}, {})",
                c10::str(o.sample_shape), o.hidden, o.depth, o.channels);
  DUALIGN_CHECK(o.kind == "mlp" || o.kind == "conv", "potential: kind must be mlp or conv, got '{}'", o.kind);
  DUALIGN_CHECK(o.kind == "mlp" || o.sample_shape.size() == 3,
                "potential: kind conv needs image samples [C, H, W], the reference draws {}", c10::str(o.sample_shape));
  features_ = torch::nn::Sequential();
  int64_t in = 1;
  for (auto d : o.sample_shape) in *= d;
  if (o.kind == "conv") {
    namespace nn = torch::nn;
    const int64_t c = o.channels;
    auto conv = [](int64_t from, int64_t to, int64_t stride) {
      return nn::Conv2d(nn::Conv2dOptions(from, to, 3).stride(stride).padding(1));
    };
    features_->push_back(conv(o.sample_shape[0], c, 1));
    features_->push_back(nn::SiLU());
    features_->push_back(conv(c, 2 * c, 2));
    features_->push_back(nn::SiLU());
    features_->push_back(conv(2 * c, 2 * c, 2));
    features_->push_back(nn::SiLU());
    const auto down = [](int64_t size) { return (size + 1) / 2; };  // 3×3, stride 2, padding 1
    in = 2 * c * down(down(o.sample_shape[1])) * down(down(o.sample_shape[2]));
  }
  features_->push_back(torch::nn::Flatten());
  register_module("features", features_);
  net_ = torch::nn::Sequential();
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
  return out_mean_ + out_scale_ * net_->forward(features_->forward(x)).squeeze(-1);
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

namespace {

// Sums every parameter's gradient over ranks in one collective (the potential is a few 10k floats).
void sum_gradients(Potential& f, dist::Comm* comm) {
  if (!comm || comm->size() == 1) return;
  std::vector<torch::Tensor> grads;
  for (auto& p : f->parameters()) grads.push_back(p.grad().defined() ? p.grad().flatten() : torch::zeros({p.numel()}));
  auto flat = torch::cat(grads).contiguous();
  sum_all_(comm, flat);
  int64_t offset = 0;
  for (auto& p : f->parameters()) {
    p.mutable_grad() = flat.narrow(0, offset, p.numel()).view_as(p).clone();
    offset += p.numel();
  }
}

}  // namespace

FitResult fit_potential(Potential& f, const torch::Tensor& x, const torch::Tensor& target, const FitOptions& o,
                        const Shard& shard_in, dist::Comm* comm) {
  DUALIGN_CHECK(x.dim() >= 2 && target.dim() == 1 && x.size(0) == target.size(0),
                "fit_potential: expected x [N, ...] and target [N], got {} and {}", c10::str(x.sizes()),
                c10::str(target.sizes()));
  DUALIGN_CHECK(o.steps >= 0 && o.batch >= 1 && o.lr > 0, "fit_potential: steps >= 0, batch >= 1 and lr > 0 required");
  const Shard shard = shard_in.total == 0 ? whole(x.size(0)) : shard_in;
  DUALIGN_CHECK(shard.count == x.size(0), "fit_potential: {} rows on this rank, its shard holds {}", x.size(0), shard.count);
  const int64_t n = shard.total;
  auto td = target.to(torch::kDouble);
  const double mean = sum_all(comm, td.sum().item<double>()) / double(n);
  auto y = (td - mean).to(torch::kFloat32);
  const double var = sum_all(comm, (td - mean).pow(2).sum().item<double>()) / double(n);
  const double sd = std::sqrt(var);
  const double scale = sd > 1e-12 ? sd : 1.0;
  f->rescale_output(scale);  // warm start: the same function, output scaled like the new targets
  const auto device = x.device();
  torch::optim::Adam opt(f->parameters(), torch::optim::AdamOptions(o.lr));
  auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  const bool full = n <= o.batch;
  const double denom = double(full ? n : o.batch);
  for (int64_t step = 0; step < o.steps; ++step) {
    torch::Tensor xb = x, yb = y;
    if (!full) {  // global indices, the same on every rank; keep the ones this rank holds
      auto idx = torch::randint(n, {o.batch}, gen, torch::kLong);
      auto mine = idx.masked_select((idx >= shard.begin) & (idx < shard.begin + shard.count)) - shard.begin;
      xb = x.index_select(0, mine.to(device));
      yb = y.index_select(0, mine.to(device));
    }
    auto loss = (f->forward(xb) / scale - yb / scale).pow(2).sum() / denom;
    opt.zero_grad();
    loss.backward();
    sum_gradients(f, comm);
    opt.step();
  }
  torch::NoGradGuard no_grad;
  auto pred = f->forward(x).to(torch::kDouble);
  const double pred_mean = sum_all(comm, pred.sum().item<double>()) / double(n);
  const double sq = sum_all(comm, (pred - pred_mean - y.to(torch::kDouble)).pow(2).sum().item<double>());
  return {std::sqrt(sq / double(n)), sd};
}

}  // namespace dualign::ddo
