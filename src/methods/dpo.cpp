// Diffusion-DPO (Wallace et al. 2024): per pair, loss = −log σ(ρ_w − ρ_l) with ρ the implicit log-ratio of
// preference.h. This is KL(q ‖ p_θ) for the hard target q = (1, 0) on the model's implicit pair distribution
// p_θ = softmax(ρ_w, ρ_l): mean-seeking. β convention: see preference.h (official β_dpo = 2β).
#include "methods/preference.h"

namespace dualign::methods {

std::unique_ptr<Method> make_dpo(const config::Section& cfg, const MethodContext& ctx) {
  // −log σ(margin), written as softplus(−margin) to stay stable for large |margin|
  return make_margin_method("dpo", [](const torch::Tensor& margin) { return torch::softplus(-margin); }, cfg, ctx);
}

}  // namespace dualign::methods
