// The `ddo:` section of an experiment (configs/experiment/gmm_ddo_*.yaml), read strictly: unknown keys fail
// with the closest valid one. `dualign ddo experiment=gmm_ddo_dpo ddo.beta=0.5` composes it like `train`.
//
//   ddo:
//     reference: ${run.root}/gmm/sft          # trained reference (checkpoint file, ckpt dir or run dir; with a
//                                            # prompts condition also a diffusers directory)
//     condition: {class: 3, guidance: 2.0}   # conditional references: tilt p_ref(x | c) for one class, or one
//                                            # prompt: {prompts: FILE, prompt: 0, guidance: 7.5}; CFG with w
//     reward: {kind: gmm_target, target: [2.5, 0.0], scale: 1.0}   # any rewards/ kind
//     objective: dpo                         # rlhf | dpo | kto
//     beta: 1.0                              # KL weight β of G = F + β KL(q ‖ p_ref)
//     beta_prime: 1.0                        # DA's extra entropic weight β′ (default: β)
//     iterations: 8                          # DA steps K (weights w_k = k)
//     n_ref: 4096                            # reference samples, drawn once, sharded over ranks
//     block: 256                             # rows per seeded block (the global set is world-size free)
//     dpo: {beta: 1.0, partners: 1024}       # β_d of the DPO logit; partner samples P
//     kto: {beta: 1.0, threshold: median, desirable_weight: 1.0, undesirable_weight: 1.0}
//     potential: {hidden: 128, depth: 3}     # + kind: conv, channels: 32 for image references (default mlp)
//     fit: {steps: 600, batch: 1024, lr: 2.0e-3}
//     sampler: {kind: ddim, steps: 50, eta: 0.0, batch: 256}   # reference samples, pool and outer h-transform
//     max_ratio: 0                           # > 0: cap p_ref/q in the DPO/KTO first variation (small β)
//     eval_pairs: 1000                       # > 0: true DPO objective (β_d = dpo.beta) on held-out pairs per k
//     sampling: {n: 2000, pool: 20000, nested_n: 500, nested_chains: 8, nested_steps: 8, iterates: false}
//     device: cpu
// plus the top-level `seed`, `threads` and `run.dir` (outputs), `run.resume` (auto | none).
#pragma once
#include <cstdint>
#include <string>

#include "ddo/dual_averaging.h"
#include "ddo/objective.h"
#include "ddo/potential.h"

namespace dualign::config {
class Config;
}

namespace dualign::ddo {

struct SamplerSettings {
  std::string kind = "ddim";
  int64_t steps = 50;
  double eta = 0.0;
  int64_t batch = 256;
};

struct SamplingSettings {
  int64_t n = 2000, pool = 20000, nested_n = 500, nested_chains = 8, nested_steps = 8;
  bool iterates = false;  // also sample every earlier iterate q_k (from its checkpoint): rewards and grids per k
};

// A conditional reference is tilted at one fixed condition, guided (ddo.condition; read by the caller into
// compose::Condition, which ddo does not depend on).
struct ConditionSettings {
  int64_t class_id = -1;     // class: C
  std::string prompts_file;  // prompts: FILE (data_tools/encode_prompts.py)
  int64_t prompt = 0;        // prompt: index into it
  double guidance = 1.0;     // guidance: w
  bool active() const { return class_id >= 0 || !prompts_file.empty(); }
};

struct DdoSettings {
  std::string reference, device = "cpu", run_dir, resume = "auto";
  ConditionSettings condition;
  ObjectiveOptions objective;
  DaOptions da;
  PotentialOptions potential;
  SamplerSettings sampler;
  SamplingSettings sampling;
  int64_t n_ref = 4096, block = 256, eval_pairs = 0;
  uint64_t seed = 0;
  int threads = 0;

  static DdoSettings read(const config::Config& cfg);  // reward: cfg.section("ddo.reward"), read by the caller
};

}  // namespace dualign::ddo
