// `dualign ddo`: Direct Distributional Optimization (DESIGN §4.2) on a trained low-dimensional reference.
// Draws N reference samples once, runs dual averaging over Gibbs tilts q_k ∝ p_ref e^{−f_k} for an RLHF or DPO
// objective (logging the TRUE objective of every iterate), then samples the final tilt with Doob's h-transform
// (one-step Tweedie and nested Monte Carlo) and measures both against the exact tilt (SIR of a large reference
// pool) by energy distance. Writes DIR/ddo.json, DIR/potential.pt and DIR/samples.png. One process.
#include <CLI/CLI.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "app/commands.h"
#include "ddo/dual_averaging.h"
#include "ddo/h_transform.h"
#include "ddo/objective.h"
#include "ddo/potential.h"
#include "eval/cli_support.h"
#include "eval/distances.h"
#include "eval/png.h"
#include "eval/sampling.h"
#include "eval/yaml_config.h"
#include "rewards/reward.h"
#include "util/error.h"
#include "util/log.h"
#include "util/seed.h"

namespace dualign::app {
namespace {

using Json = nlohmann::ordered_json;

struct DdoArgs {
  std::string reference, reward, objective = "rlhf", out, sampler = "ddim", device = "cpu";
  double beta = 1.0, beta_prime = -1, dpo_beta = 1.0, fit_lr = 2e-3, eta = 0;
  int64_t iterations = 5, n_ref = 4096, partners = 1024, hidden = 128, depth = 3, fit_steps = 600, fit_batch = 1024;
  int64_t steps = 50, batch = 256, n = 1000, pool = 20000, nested_n = 500, nested_chains = 8, nested_steps = 8;
  uint64_t seed = 0;
  int threads = 0;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

Json record_json(const ddo::DaRecord& r) {
  return Json{{"k", r.k},     {"objective", r.objective}, {"kl", r.kl},           {"regularised", r.regularised},
              {"ess", r.ess}, {"reward", r.reward},       {"fit_rmse", r.fit_rmse}, {"target_std", r.target_std}};
}

double mean_reward(rewards::Reward& reward, const torch::Tensor& x) {
  return reward.score(x, {}).to(torch::kDouble).mean().item<double>();
}

void run_ddo(const DdoArgs& a) {
  if (eval::launcher_rank() != 0) return;
  DUALIGN_CHECK(a.n_ref >= 2 && a.n >= 2 && a.pool >= 2 * a.n, "--n-ref, -n must be >= 2 and --pool >= 2n (got {}, {}, {})",
                a.n_ref, a.n, a.pool);
  DUALIGN_CHECK(a.beta > 0, "--beta must be > 0, got {}", a.beta);
  auto reward_cfg = eval::config_from_yaml_file(a.reward);
  if (a.threads > 0) at::set_num_threads(a.threads);
  const auto device = eval::pick_device(a.device);
  std::unique_ptr<rewards::Reward> reward;
  try {
    reward = rewards::make_reward(reward_cfg.root(), device);
  } catch (const Error& e) {
    fail("--reward {}: {}", a.reward, e.what());
  }
  auto ref = eval::load_trained_model(a.reference, device);
  ref.model->freeze();
  const auto shape = ref.model->sample_shape();
  DUALIGN_CHECK(shape.size() == 1, "--reference {}: ddo needs flat samples (points), the model draws {} dims",
                ref.checkpoint, shape.size());
  std::filesystem::create_directories(a.out);

  eval::SampleSpec spec;
  spec.sampler = eval::sampler_config(a.sampler, a.steps, a.eta);
  spec.batch_size = a.batch;
  Json out;
  out["reference"] = ref.checkpoint;
  out["reward"] = a.reward;
  out["objective"] = a.objective;
  out["beta"] = a.beta;
  out["beta_prime"] = a.beta_prime < 0 ? a.beta : a.beta_prime;
  out["dpo_beta"] = a.dpo_beta;
  out["n_ref"] = a.n_ref;
  out["sampler"] = a.sampler;
  out["steps"] = a.steps;
  out["seed"] = a.seed;

  // 1. Reference samples (drawn once) and the objective on them.
  auto t0 = std::chrono::steady_clock::now();
  log::info("drawing {} reference samples from {}", a.n_ref, ref.checkpoint);
  auto x_ref = eval::sample(*ref.model, *ref.schedule, spec, a.n_ref, derive_seed(a.seed, "ddo/reference")).to(device);
  auto r = reward->score(x_ref, {}).to(torch::kDouble).cpu();
  auto objective = ddo::make_objective(a.objective, r, a.dpo_beta, std::min(a.partners, a.n_ref));
  if (a.objective == "dpo") out["dpo_optimum"] = objective->value(-r / a.dpo_beta);  // min over all q (β → 0)

  // 2. Dual averaging.
  ddo::Potential f(ddo::PotentialOptions{shape[0], a.hidden, a.depth});
  f->to(device);
  ddo::DaOptions da;
  da.beta = a.beta;
  da.beta_prime = a.beta_prime;
  da.iterations = a.iterations;
  da.fit = {a.fit_steps, a.fit_batch, a.fit_lr, derive_seed(a.seed, "ddo/fit")};
  Json iters = Json::array();
  auto records = ddo::run_dual_averaging(f, x_ref, r, *objective, da, [&](const ddo::DaRecord& rec) {
    log::info("q_{}: {} = {:.5f}  KL = {:.4f}  G = {:.5f}  E_q[r] = {:.4f}  ESS = {:.0f}  fit rmse = {:.3g} (target std {:.3g})",
              rec.k, a.objective, rec.objective, rec.kl, rec.regularised, rec.reward, rec.ess, rec.fit_rmse, rec.target_std);
    iters.push_back(record_json(rec));
  });
  out["iterations"] = iters;
  out["da_seconds"] = seconds_since(t0);
  torch::save(f, (std::filesystem::path(a.out) / "potential.pt").string());
  f->eval();
  for (auto& p : f->parameters()) p.requires_grad_(false);

  // 3. The exact tilt of the trained reference: SIR of a pool of reference samples by exp(−f).
  log::info("exact tilt: SIR of {} reference samples", a.pool);
  auto pool = eval::sample(*ref.model, *ref.schedule, spec, a.pool, derive_seed(a.seed, "ddo/pool")).to(device);
  torch::Tensor f_pool;
  {
    torch::NoGradGuard no_grad;
    f_pool = f->forward(pool).cpu();
  }
  const auto pool_stats = ddo::tilt_stats(f_pool);
  auto exact = ddo::sir_resample(pool, f_pool, a.n, derive_seed(a.seed, "ddo/sir"));
  // Noise floor: SIR of the two halves of the pool against each other.
  const int64_t half = a.pool / 2;
  auto sir_a = ddo::sir_resample(pool.narrow(0, 0, half), f_pool.narrow(0, 0, half), a.n, derive_seed(a.seed, "ddo/sir_a"));
  auto sir_b = ddo::sir_resample(pool.narrow(0, half, half), f_pool.narrow(0, half, half), a.n, derive_seed(a.seed, "ddo/sir_b"));
  auto plain = pool.narrow(0, 0, a.n);
  Json s;
  s["pool"] = a.pool;
  s["pool_ess"] = pool_stats.ess;
  s["pool_kl"] = pool_stats.kl;
  s["exact_reward"] = (ddo::tilt_weights(f_pool) * reward->score(pool, {}).to(torch::kDouble).cpu()).sum().item<double>();
  s["n"] = a.n;
  s["energy_floor_sir_halves"] = eval::energy_distance(sir_a.cpu(), sir_b.cpu());
  s["energy_reference_vs_exact"] = eval::energy_distance(plain.cpu(), exact.cpu());
  s["reference_reward"] = mean_reward(*reward, plain);

  // 4. h-transform samples.
  diffusion::ScoreFn ref_fn = [&](const torch::Tensor& x, const torch::Tensor& t) {
    return ref.model->forward(x, t.to(torch::kInt64), {});
  };
  ddo::PotentialFn f_fn = [&](const torch::Tensor& x) { return f->forward(x); };
  const uint64_t hseed = derive_seed(a.seed, "ddo/h_transform");
  t0 = std::chrono::steady_clock::now();
  eval::SampleSpec tw = spec;
  tw.guidance = ddo::tweedie_guidance(ref_fn, *ref.schedule, f_fn);
  auto x_tw = eval::sample(*ref.model, *ref.schedule, tw, a.n, hseed);
  s["tweedie_seconds"] = seconds_since(t0);
  s["energy_tweedie_vs_exact"] = eval::energy_distance(x_tw, exact.cpu());
  s["tweedie_reward"] = mean_reward(*reward, x_tw.to(device));
  log::info("Tweedie h-transform: energy distance to the exact tilt {:.5f} (reference {:.5f}, floor {:.5f})",
            s["energy_tweedie_vs_exact"].get<double>(), s["energy_reference_vs_exact"].get<double>(),
            s["energy_floor_sir_halves"].get<double>());
  if (a.nested_n > 0) {
    t0 = std::chrono::steady_clock::now();
    eval::SampleSpec ne = spec;
    ne.batch_size = std::max<int64_t>(1, a.batch / a.nested_chains);
    ne.guidance = ddo::nested_guidance(ref_fn, *ref.schedule, f_fn,
                                       {a.nested_chains, a.nested_steps, 1.0, derive_seed(a.seed, "ddo/nested")});
    auto x_ne = eval::sample(*ref.model, *ref.schedule, ne, a.nested_n, hseed);
    s["nested_n"] = a.nested_n;
    s["nested_chains"] = a.nested_chains;
    s["nested_steps"] = a.nested_steps;
    s["nested_seconds"] = seconds_since(t0);
    s["energy_nested_vs_exact"] = eval::energy_distance(x_ne, exact.cpu());
    s["energy_tweedie_vs_exact_same_n"] = eval::energy_distance(x_tw.narrow(0, 0, std::min(a.n, a.nested_n)), exact.cpu());
    s["nested_reward"] = mean_reward(*reward, x_ne.to(device));
    log::info("nested MC h-transform (M = {}, S = {}): energy distance {:.5f} in {:.0f} s", a.nested_chains,
              a.nested_steps, s["energy_nested_vs_exact"].get<double>(), s["nested_seconds"].get<double>());
  }
  out["sampling"] = s;
  if (shape[0] == 2) eval::write_scatter_png((std::filesystem::path(a.out) / "samples.png").string(), x_tw, exact.cpu());

  const auto path = (std::filesystem::path(a.out) / "ddo.json").string();
  {
    std::ofstream file(path + ".tmp");
    DUALIGN_CHECK(file.good(), "--out {}: cannot write {}", a.out, path);
    file << out.dump(2) << "\n";
    DUALIGN_CHECK(file.good(), "--out {}: write failed", a.out);
  }
  std::filesystem::rename(path + ".tmp", path);
  log::info("wrote {}", path);
}

void add_ddo_command(CLI::App& cli) {
  auto a = std::make_shared<DdoArgs>();
  auto* cmd = cli.add_subcommand("ddo", "Direct Distributional Optimization: dual averaging over tilts of a reference, h-transform sampling");
  cmd->add_option("--reference", a->reference, "Reference: checkpoint file, ckpt dir or run dir")->required();
  cmd->add_option("--reward", a->reward, "Reward YAML ({kind: gmm_target, target: [2.5, 0]})")->required();
  cmd->add_option("--objective", a->objective, "rlhf | dpo")->capture_default_str();
  cmd->add_option("--beta", a->beta, "KL coefficient β of G = F + β KL(q ‖ p_ref)")->capture_default_str();
  cmd->add_option("--beta-prime", a->beta_prime, "DA's extra entropic coefficient β′ (< 0: = β)")->capture_default_str();
  cmd->add_option("--dpo-beta", a->dpo_beta, "β_d of the DPO logit β_d (ℓ(x_w) − ℓ(x_l))")->capture_default_str();
  cmd->add_option("--partners", a->partners, "DPO: partner samples per reference sample")->capture_default_str();
  cmd->add_option("--iterations", a->iterations, "DA iterations K")->capture_default_str();
  cmd->add_option("--out", a->out, "Output directory (ddo.json, potential.pt, samples.png)")->required();
  cmd->add_option("--n-ref", a->n_ref, "Reference samples for DA (drawn once)")->capture_default_str();
  cmd->add_option("--hidden", a->hidden, "Potential MLP width")->capture_default_str();
  cmd->add_option("--depth", a->depth, "Potential MLP hidden layers")->capture_default_str();
  cmd->add_option("--fit-steps", a->fit_steps, "Adam steps per DA fit")->capture_default_str();
  cmd->add_option("--fit-batch", a->fit_batch, "Fit mini-batch")->capture_default_str();
  cmd->add_option("--fit-lr", a->fit_lr, "Fit learning rate")->capture_default_str();
  cmd->add_option("-n,--count", a->n, "h-transform (Tweedie) and SIR samples")->capture_default_str();
  cmd->add_option("--pool", a->pool, "Reference pool for the exact tilt (SIR)")->capture_default_str();
  cmd->add_option("--nested-n", a->nested_n, "Nested-MC h-transform samples (0: skip)")->capture_default_str();
  cmd->add_option("--nested-chains", a->nested_chains, "Inner chains M per outer step")->capture_default_str();
  cmd->add_option("--nested-steps", a->nested_steps, "Inner DDIM (η = 1) steps S")->capture_default_str();
  cmd->add_option("--sampler", a->sampler, "Outer sampler: ddim | ddpm")->capture_default_str();
  cmd->add_option("--steps", a->steps, "Outer sampler steps")->capture_default_str();
  cmd->add_option("--eta", a->eta, "Outer DDIM eta")->capture_default_str();
  cmd->add_option("--batch", a->batch, "Rows per model call")->capture_default_str();
  cmd->add_option("--seed", a->seed, "Seed")->capture_default_str();
  cmd->add_option("--device", a->device, "auto | cpu | cuda[:N]")->capture_default_str();
  cmd->add_option("--threads", a->threads, "CPU threads (0: OMP_NUM_THREADS or all cores)")->capture_default_str();
  cmd->callback([a] { run_ddo(*a); });
}

const bool registered = register_command(add_ddo_command);

}  // namespace
}  // namespace dualign::app
