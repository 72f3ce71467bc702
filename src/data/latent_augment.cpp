#include "data/latent_augment.h"

#include "util/error.h"
#include "util/seed.h"

namespace dualign::data {
namespace {

// [local] bool: rows whose U[0, 1) draw falls below `probability`, drawn for the global micro-batch from the
// stream (batch.seed, purpose) and sliced like draw_global_normal.
torch::Tensor rows_below(double probability, const Batch& batch, const char* purpose, const torch::Device& device) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(derive_seed(batch.seed, purpose));
  auto all = at::rand({batch.global_size}, gen, torch::kFloat64);
  return all.narrow(0, batch.offset, batch.local_size()).to(device) < probability;
}

// `a` where mask (one per row) is true, else `b`.
torch::Tensor pick_rows(const torch::Tensor& mask, const torch::Tensor& a, const torch::Tensor& b) {
  std::vector<int64_t> shape(static_cast<size_t>(a.dim()), 1);
  shape[0] = a.size(0);
  return torch::where(mask.view(shape), a, b);
}

}  // namespace

LatentPosterior choose_flipped(const LatentPosterior& posterior, double probability, const Batch& batch,
                               const char* purpose) {
  DUALIGN_CHECK(posterior.flip_mean.defined(), "{}: random flips need the flipped image's posterior", purpose);
  DUALIGN_CHECK(!posterior.logvar.defined() || posterior.flip_logvar.defined(),
                "{}: the flipped image's posterior has no log-variance", purpose);
  auto flip = rows_below(probability, batch, purpose, posterior.mean.device());
  LatentPosterior out = posterior;
  out.mean = pick_rows(flip, posterior.flip_mean, posterior.mean);
  if (posterior.logvar.defined()) out.logvar = pick_rows(flip, posterior.flip_logvar, posterior.logvar);
  return out;
}

torch::Tensor sample_posterior(const torch::Tensor& mean, const torch::Tensor& logvar, const Batch& batch,
                               const char* purpose) {
  DUALIGN_CHECK(logvar.defined() && logvar.sizes() == mean.sizes(), "{}: the log-variance must have the shape of the mean",
                purpose);
  auto eps = draw_global_normal(batch, purpose, mean.sizes().slice(1), mean.device());
  return mean.to(torch::kFloat32) + (0.5 * logvar.to(torch::kFloat32)).exp() * eps;
}

torch::Tensor drop_prompts(const torch::Tensor& text, const torch::Tensor& empty, double probability,
                           const Batch& batch, const char* purpose) {
  DUALIGN_CHECK(empty.defined() && empty.dim() == text.dim() && empty.size(0) == 1 &&
                    empty.sizes().slice(1) == text.sizes().slice(1),
                "{}: the empty-prompt embedding must be [1, {}], got {}", purpose,
                c10::str(text.sizes().slice(1)), empty.defined() ? c10::str(empty.sizes()) : "none");
  auto drop = rows_below(probability, batch, purpose, text.device());
  return pick_rows(drop, empty.to(text.options()).expand_as(text), text);
}

}  // namespace dualign::data
