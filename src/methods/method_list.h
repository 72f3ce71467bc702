// Every training method, one line each. A new method is a new file <name>.cpp defining
//   std::unique_ptr<Method> make_<name>(const config::Section& cfg, const MethodContext& ctx);
// plus one line here and a config file configs/method/<name>.yaml (walk-through: src/methods/README.md).
// Traits, read by `dualign plan`, `dualign train --help` and config validation before any method is built:
//   reference  the method keeps a frozen copy of the starting model (one more set of weights in memory; mixture
//              holds one only for `constraint: kl`)
//   items      network inputs per dataset row: 2 for preference pairs (winner and loser in one forward), else 1
//   duals      the method has dual variables updated in end_step (a collective every dual window)
//   data       the dataset formats it trains on (src/data/formats.h), or none (it samples from the policy)
// No include guard: the includer defines DUALIGN_METHOD(name, reference, items, duals, data, summary).
//             name         reference  items  duals  data                summary
DUALIGN_METHOD(sft,         false,     1,     false, "images|points",    "denoising score matching (pretraining, supervised fine-tuning)")
DUALIGN_METHOD(dpo,         true,      2,     false, "preference_pairs", "Diffusion-DPO: -log sigmoid(margin) on preference pairs")
DUALIGN_METHOD(hinge,       true,      2,     false, "preference_pairs", "Diffusion-DPO with the hinge loss max(0, 1 - margin) (diffusers' loss_type=hinge)")
DUALIGN_METHOD(dmpo,        true,      2,     false, "preference_pairs", "DMPO: reverse-KL preference optimisation toward the target pair distribution")
DUALIGN_METHOD(kto,         true,      1,     false, "labelled_samples", "Diffusion-KTO: utility of desirable/undesirable samples against a KL reference point")
DUALIGN_METHOD(constrained, true,      1,     true,  "none",             "constrained alignment: reward thresholds by primal-dual on the policy's own samples")
DUALIGN_METHOD(mixture,     false,     1,     true,  "images|points",    "OR composition and fairness: lambda-weighted per-group losses with dual ascent")
