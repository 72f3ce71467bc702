#include "dist/zero_adafactor.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "util/error.h"

namespace dualign::dist {

OwnerLayout make_owner_layout(const std::vector<int64_t>& numels, int world_size) {
  DUALIGN_CHECK(world_size >= 1, "owner layout: world size {} must be >= 1", world_size);
  OwnerLayout l;
  l.world_size = world_size;
  l.owner.assign(numels.size(), 0);
  l.load.assign(world_size, 0);
  // Largest first onto the least-loaded rank (ties: the lower index / rank), deterministic on every rank.
  std::vector<size_t> order(numels.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return numels[a] > numels[b]; });
  for (size_t i : order) {
    const int r = static_cast<int>(std::min_element(l.load.begin(), l.load.end()) - l.load.begin());
    l.owner[i] = r;
    l.load[r] += numels[i];
  }
  l.shard = *std::max_element(l.load.begin(), l.load.end());
  l.padded = l.shard * world_size;
  // Within a rank's slot the parameters keep their order.
  std::vector<int64_t> next(world_size);
  for (int r = 0; r < world_size; ++r) next[r] = r * l.shard;
  l.offsets.resize(numels.size());
  for (size_t i = 0; i < numels.size(); ++i) {
    l.offsets[i] = next[l.owner[i]];
    next[l.owner[i]] += numels[i];
  }
  return l;
}

namespace {

std::vector<int64_t> numels_of(const std::vector<at::Tensor>& params) {
  std::vector<int64_t> numels;
  for (const auto& p : params) numels.push_back(p.numel());
  return numels;
}

AdafactorConfig validated(AdafactorConfig c) {
  c.validate();
  return c;
}

}  // namespace

ZeroAdafactor::ZeroAdafactor(Comm& comm, std::vector<at::Tensor> params, AdafactorConfig config, ZeroOptions options)
    : comm_(comm),
      config_(validated(config)),
      layout_(make_owner_layout(numels_of(params), comm.size())),
      buffers_(comm, std::move(params), layout_.offsets, layout_.shard, options) {  // broadcasts rank 0's params
  master_ = buffers_.master_slot();
  const auto& all_params = buffers_.params();  // `params` was moved into the buffers
  for (size_t i = 0; i < all_params.size(); ++i)
    if (layout_.owner[i] == comm_.rank())
      states_[i] = make_adafactor_state(all_params[i].sizes(), master_.options(), config_.beta1 > 0);
}

ZeroAdafactor::~ZeroAdafactor() = default;

int64_t ZeroAdafactor::state_bytes() const {
  int64_t n = master_.nbytes();
  for (const auto& [i, s] : states_)
    for (const auto* t : {&s.exp_avg, &s.exp_avg_sq_row, &s.exp_avg_sq_col, &s.exp_avg_sq})
      if (t->defined()) n += t->nbytes();
  return n;
}

double ZeroAdafactor::step(double max_grad_norm, double unscale) {
  torch::NoGradGuard no_grad;
  const double norm = buffers_.reduce_gradients(max_grad_norm, unscale);
  if (!std::isfinite(norm)) return norm;  // every rank got the same NaN/inf: no rank updates
  ++step_;
  const int64_t slot = comm_.rank() * layout_.shard;
  const auto& grad = buffers_.grad_slot();
  for (auto& [i, state] : states_) {
    const auto sizes = buffers_.params()[i].sizes();
    const int64_t begin = layout_.offsets[i] - slot, numel = buffers_.params()[i].numel();
    auto param = master_.narrow(0, begin, numel).view(sizes);
    adafactor_update(param, grad.narrow(0, begin, numel).view(sizes), state, config_);
  }
  buffers_.gather_parameters(master_);  // the slot's padding was never touched: still zero
  return norm;
}

std::map<std::string, at::Tensor> ZeroAdafactor::shard_state() const {
  std::map<std::string, at::Tensor> out{{"master", master_}, {"step", torch::tensor(step_, torch::kInt64)}};
  for (const auto& [i, s] : states_) put_adafactor_state(s, std::to_string(i) + ".", out);
  return out;
}

void ZeroAdafactor::load_shard_state(const std::map<std::string, at::Tensor>& state, const std::string& source) {
  for (const char* key : {"master", "step"})
    if (!state.count(key)) fail("ZeRO Adafactor shard {}: tensor 'optimizer_shard/{}' is missing", source, key);
  DUALIGN_CHECK(state.at("master").numel() == layout_.shard,
                "ZeRO Adafactor shard {}: the saved master slot has {} elements, this rank's has {} (written with "
                "another world size or model?)", source, state.at("master").numel(), layout_.shard);
  torch::NoGradGuard no_grad;
  master_.copy_(state.at("master").reshape({-1}));
  step_ = state.at("step").item<int64_t>();
  for (auto& [i, s] : states_) load_adafactor_state(s, std::to_string(i) + ".", state, source);
}

}  // namespace dualign::dist
