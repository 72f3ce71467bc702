// Diffusion-DPO with the hinge loss (diffusers' train_diffusion_dpo.py, loss_type=hinge): per pair,
// loss = max(0, 1 − (ρ_w − ρ_l)) with ρ the implicit log-ratio of preference.h. Unlike the sigmoid loss it stops
// pushing a pair once its margin exceeds 1, so β sets the margin at which a pair counts as learned.
#include "methods/preference.h"

namespace dualign::methods {

std::unique_ptr<Method> make_hinge(const config::Section& cfg, const MethodContext& ctx) {
  return make_margin_method("hinge", [](const torch::Tensor& margin) { return torch::relu(1.0 - margin); }, cfg, ctx);
}

}  // namespace dualign::methods
