// The `ddo:` section of an experiment (configs/experiment/gmm_ddo_*.yaml), read strictly: unknown keys fail
// with the closest valid one. `dualign ddo experiment=gmm_ddo_dpo ddo.beta=0.5` composes it like `train`.
//
//   ddo:
//     reference: ${run.root}/gmm/sft          # trained reference (checkpoint file, ckpt dir or run dir)
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

struct DdoSettings {
  std::string reference, device = "cpu", run_dir, resume = "auto";
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
