// `dualign ddo [overrides...]`: Direct Distributional Optimization (docs/methods.md) on a trained low-dimensional
// reference, configured by the `ddo:` section of an experiment (ddo/settings.h), e.g.
//   dualign ddo experiment=gmm_ddo_dpo ddo.beta=0.5
//   mpirun -np 2 dualign ddo experiment=gmm_ddo_rlhf threads=1
// Draws N reference samples once (sharded over ranks in seeded blocks), runs dual averaging over Gibbs tilts
// q_k ∝ p_ref e^{−f_k} for an RLHF, DPO or KTO objective (logging the TRUE objective of every iterate, and
// with ddo.eval_pairs the true DPO objective on held-out reference pairs), checkpointing after every fit
// (<run.dir>/ckpt, resumed automatically), then samples the final tilt with Doob's h-transform (one-step
// Tweedie and nested Monte Carlo) and measures both against the exact tilt (SIR of a large reference pool) by
// energy distance. Writes <run.dir>/ddo.json, potential.pt, samples.png.
//
// `dualign ddo --policy RUN [--policy RUN2 ...] [--all-checkpoints] --out FILE overrides...` instead evaluates
// the true DPO objective (β_d = ddo.dpo.beta) of trained diffusion policies (e.g. Diffusion-DPO) on the SAME
// held-out reference pairs, with log q_θ/p_ref from PF-ODE likelihoods (exact divergence).
#include <CLI/CLI.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

#include "app/commands.h"
#include "app/config_dir.h"
#include "ckpt/checkpoint.h"
#include "ckpt/store.h"
#include "compose/components.h"
#include "config/config.h"
#include "ddo/collective.h"
#include "ddo/da_checkpoint.h"
#include "ddo/dual_averaging.h"
#include "ddo/h_transform.h"
#include "ddo/objective.h"
#include "ddo/potential.h"
#include "ddo/settings.h"
#include "diffusion/continuous.h"
#include "dist/comm.h"
#include "dist/runtime.h"
#include "app/cli_support.h"
#include "eval/distances.h"
#include "eval/png.h"
#include "eval/sampling.h"
#include "models/score_model.h"
#include "rewards/reward.h"
#include "util/error.h"
#include "util/log.h"
#include "util/seed.h"

namespace dualign::app {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

struct DdoArgs {
  std::string cfg, config_dir, config_name = "config", out;
  bool resolve = false, all_checkpoints = false;
  std::vector<std::string> overrides, policies;
  int64_t ode_steps = 100;
  std::string divergence = "exact";  // of the PF-ODE likelihood: exact (points) | hutchinson (images)
  int64_t probes = 1;
  double ode_power = 1;  // PF-ODE step spacing (LikelihoodConfig::time_power)
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

Json record_json(const ddo::DaRecord& r) {
  Json j{{"k", r.k},     {"objective", r.objective}, {"kl", r.kl},           {"regularised", r.regularised},
         {"ess", r.ess}, {"reward", r.reward},       {"fit_rmse", r.fit_rmse}, {"target_std", r.target_std}};
  if (!std::isnan(r.heldout)) j["heldout_dpo"] = r.heldout;
  return j;
}

void write_json(const std::string& path, const Json& j) {
  {
    std::ofstream file(path + ".tmp");
    DUALIGN_CHECK(file.good(), "cannot write {}", path);
    file << j.dump(2) << "\n";
    DUALIGN_CHECK(file.good(), "write failed: {}", path);
  }
  fs::rename(path + ".tmp", path);
  log::info("wrote {}", path);
}

// Everything a ddo run shares: settings, communicator, reference model, reward.
struct Context {
  const config::Config& cfg;
  ddo::DdoSettings s;
  dist::Comm* comm;
  torch::Device device;
  eval::TrainedModel ref;
  std::unique_ptr<rewards::Reward> reward;
  eval::SampleSpec spec;
  bool root() const { return comm->rank() == 0; }

  ddo::Shard shard(int64_t n) const { return ddo::make_shard(n, s.block, comm->rank(), comm->size()); }

  // This rank's rows of an n-row sample set of `purpose`, drawn block by block (block b from its own seed).
  torch::Tensor draw(const ddo::Shard& sh, const std::string& purpose,
                     const std::function<eval::SampleSpec(int64_t block)>& spec_of = {}) const {
    std::vector<torch::Tensor> parts;
    for (int64_t b = sh.first_block; b < sh.first_block + sh.num_blocks; ++b) {
      const int64_t start = b * sh.block, len = std::min(sh.block, sh.total - start);
      parts.push_back(eval::sample(*ref.model, *ref.schedule, spec_of ? spec_of(b) : spec, len,
                                   derive_seed(s.seed, purpose, {b})));
    }
    std::vector<int64_t> shape{0};
    for (auto d : ref.model->sample_shape()) shape.push_back(d);
    return parts.empty() ? torch::zeros(shape) : torch::cat(parts, 0);
  }
  // The reference UNet as a sampler's model function (the h-transforms guide it).
  diffusion::ScoreFn reference_fn() const {
    return [this](const torch::Tensor& x, const torch::Tensor& t) { return ref.model->forward(x, t.to(torch::kInt64), {}); };
  }
  torch::Tensor score(const torch::Tensor& x) const {
    return x.size(0) ? reward->score(x.to(device), {}).to(torch::kDouble).cpu() : torch::zeros({0}, torch::kDouble);
  }
};

// Held-out reference pairs (x_a, x_b), both ~ p_ref, soft label σ(r(x_a) − r(x_b)) — the distribution of the
// DPO objective and of `dualign data pairs --bt-beta 1`. Sharded; `loss(delta)` is the all-reduced mean.
struct EvalPairs {
  ddo::Shard shard;
  torch::Tensor xa, xb, labels;
  double checksum = 0;  // identical for every run that draws the same pairs

  EvalPairs(const Context& c, int64_t n) : shard(c.shard(n)) {
    xa = c.draw(shard, "ddo/eval_pairs/a");
    xb = c.draw(shard, "ddo/eval_pairs/b");
    labels = torch::sigmoid(c.score(xa) - c.score(xb));
    checksum = ddo::sum_all(c.comm, (xa.to(torch::kDouble) + 2 * xb.to(torch::kDouble)).sum().item<double>());
  }
  // Mean BT loss with logit β_d (ℓ(x_a) − ℓ(x_b)) and the fraction of pairs ordered like the reward.
  std::pair<double, double> loss(const Context& c, const torch::Tensor& delta) const {
    auto l = ddo::bt_pair_loss(delta, labels, c.s.objective.dpo_beta);
    auto agree = ((delta > 0) == (labels > 0.5)).to(torch::kDouble);
    auto sums = ddo::sum_all(c.comm, {l.sum().item<double>(), agree.sum().item<double>()});
    return {sums[0] / double(shard.total), sums[1] / double(shard.total)};
  }
};

// The settings that fix the DA trajectory (not `iterations`: a finished run can be extended).
std::string signature(const Context& c) {
  const auto& s = c.s;
  const auto& o = s.objective;
  return fmt::format(
      "reference={} objective={} beta={} beta_prime={} n_ref={} block={} dpo=({},{}) kto=({},{},{},{}) "
      "potential=({},{}{}) fit=({},{},{}) sampler=({},{},{}) eval_pairs={} max_ratio={} seed={}",
      c.ref.checkpoint, o.name, s.da.beta, s.da.beta_prime, s.n_ref, s.block, o.dpo_beta, o.partners, o.kto_beta,
      o.kto_threshold, o.kto_desirable_weight, o.kto_undesirable_weight, s.potential.hidden, s.potential.depth,
      s.potential.kind == "mlp" ? "" : fmt::format(",{},{}", s.potential.kind, s.potential.channels),
      s.da.fit.steps, s.da.fit.batch, s.da.fit.lr, s.sampler.kind, s.sampler.steps, s.sampler.eta, s.eval_pairs,
      o.max_ratio, s.seed);
}

// Energy distance of sample sets, images flattened to vectors.
double energy(const torch::Tensor& x, const torch::Tensor& y) { return eval::energy_distance(x.flatten(1), y.flatten(1)); }

// The reference pool the exact tilts are resampled from (SIR), this rank's rows and all of them.
struct Pool {
  ddo::Shard shard;
  torch::Tensor local, all;
};

// One tilt q ∝ p_ref e^{−f}: the exact law by SIR of the pool and the Tweedie h-transform on the reference UNet.
struct TiltSamples {
  torch::Tensor exact, tweedie;  // gathered on every rank
  ddo::TiltStats pool_stats;
  double exact_reward = 0, tweedie_seconds = 0;
};

TiltSamples sample_tilt(Context& c, ddo::Potential& f, const Pool& pool, const std::string& sir_purpose) {
  TiltSamples out;
  torch::Tensor f_local;
  {
    torch::NoGradGuard no_grad;
    f_local = f->forward(pool.local.to(c.device)).to(torch::kDouble).cpu();
  }
  out.pool_stats = ddo::tilt_stats(f_local, c.comm);
  out.exact_reward = ddo::tilt_mean(f_local, c.score(pool.local), c.comm);
  auto f_pool = ddo::gather_rows(c.comm, pool.shard, f_local);
  out.exact = ddo::sir_resample(pool.all, f_pool, c.s.sampling.n, derive_seed(c.s.seed, sir_purpose));

  const auto ref_fn = c.reference_fn();
  ddo::PotentialFn f_fn = [&](const torch::Tensor& x) { return f->forward(x); };
  auto t0 = std::chrono::steady_clock::now();
  auto tw_shard = c.shard(c.s.sampling.n);
  out.tweedie = ddo::gather_rows(c.comm, tw_shard, c.draw(tw_shard, "ddo/h_transform", [&](int64_t) {
    eval::SampleSpec tw = c.spec;
    tw.guidance = ddo::tweedie_guidance(ref_fn, *c.ref.schedule, f_fn);
    return tw;
  }));
  out.tweedie_seconds = seconds_since(t0);
  return out;
}

// Image grids of a tilt's samples (rank 0): the h-transform's and the exact law's.
void write_grids(const Context& c, const TiltSamples& t, const std::string& suffix) {
  // Images only (1 or 3 channels); latents would need the VAE, which the reward owns.
  if (!c.root() || t.tweedie.dim() != 4 || (t.tweedie.size(1) != 1 && t.tweedie.size(1) != 3)) return;
  eval::GridOptions g;
  g.nrow = 10;
  g.max_images = 100;
  eval::write_image_grid((fs::path(c.s.run_dir) / ("samples" + suffix + ".png")).string(), t.tweedie, g);
  eval::write_image_grid((fs::path(c.s.run_dir) / ("samples_exact" + suffix + ".png")).string(), t.exact, g);
}

// Samples the final tilt three ways and compares them by energy distance (rank 0 computes, all ranks sample); with
// ddo.sampling.iterates also every iterate q_k, k = 1 (the reference) .. K, each f_k from its checkpoint (rewards and
// grids per k).
Json evaluate_sampling(Context& c, ddo::Potential& f, int64_t final_k) {
  const auto& m = c.s.sampling;
  Json s;
  if (m.n == 0) return s;
  log::info("exact tilt: SIR of {} reference samples", m.pool);
  Pool pool;
  pool.shard = c.shard(m.pool);
  pool.local = c.draw(pool.shard, "ddo/pool");
  pool.all = ddo::gather_rows(c.comm, pool.shard, pool.local);
  auto tilt = sample_tilt(c, f, pool, "ddo/sir");
  auto mean_reward = [&](const torch::Tensor& x) { return c.score(x).mean().item<double>(); };
  const uint64_t seed = c.s.seed;
  if (c.root()) {
    const int64_t half = m.pool / 2;  // noise floor: SIR of the two pool halves against each other
    torch::Tensor f_pool;
    {
      torch::NoGradGuard no_grad;
      f_pool = f->forward(pool.all.to(c.device)).to(torch::kDouble).cpu();
    }
    auto a = ddo::sir_resample(pool.all.narrow(0, 0, half), f_pool.narrow(0, 0, half), m.n, derive_seed(seed, "ddo/sir_a"));
    auto b = ddo::sir_resample(pool.all.narrow(0, half, half), f_pool.narrow(0, half, half), m.n, derive_seed(seed, "ddo/sir_b"));
    auto plain = pool.all.narrow(0, 0, m.n);
    s["pool"] = m.pool;
    s["pool_ess"] = tilt.pool_stats.ess;
    s["pool_kl"] = tilt.pool_stats.kl;
    s["exact_reward"] = tilt.exact_reward;
    s["n"] = m.n;
    s["energy_floor_sir_halves"] = energy(a, b);
    s["energy_reference_vs_exact"] = energy(plain, tilt.exact);
    s["reference_reward"] = mean_reward(plain);
    s["tweedie_seconds"] = tilt.tweedie_seconds;
    s["energy_tweedie_vs_exact"] = energy(tilt.tweedie, tilt.exact);
    s["tweedie_reward"] = mean_reward(tilt.tweedie);
    log::info("Tweedie h-transform: energy distance to the exact tilt {:.5f} (reference {:.5f}, floor {:.5f})",
              s["energy_tweedie_vs_exact"].get<double>(), s["energy_reference_vs_exact"].get<double>(),
              s["energy_floor_sir_halves"].get<double>());
  }
  if (m.nested_n > 0) {
    const auto ref_fn = c.reference_fn();
    ddo::PotentialFn f_fn = [&](const torch::Tensor& x) { return f->forward(x); };
    auto t0 = std::chrono::steady_clock::now();
    auto ne_shard = c.shard(m.nested_n);
    auto x_ne = ddo::gather_rows(c.comm, ne_shard, c.draw(ne_shard, "ddo/h_transform", [&](int64_t b) {
      eval::SampleSpec ne = c.spec;
      ne.batch_size = std::max<int64_t>(1, c.spec.batch_size / m.nested_chains);
      ne.guidance = ddo::nested_guidance(ref_fn, *c.ref.schedule, f_fn,
                                         {m.nested_chains, m.nested_steps, 1.0, derive_seed(seed, "ddo/nested", {b})});
      return ne;
    }));
    s["nested_seconds"] = seconds_since(t0);
    if (c.root()) {
      s["nested_n"] = m.nested_n;
      s["nested_chains"] = m.nested_chains;
      s["nested_steps"] = m.nested_steps;
      s["energy_nested_vs_exact"] = energy(x_ne, tilt.exact);
      s["energy_tweedie_vs_exact_same_n"] = energy(tilt.tweedie.narrow(0, 0, std::min(m.n, m.nested_n)), tilt.exact);
      s["nested_reward"] = mean_reward(x_ne);
      log::info("nested MC h-transform (M = {}, S = {}): energy distance {:.5f} in {:.0f} s", m.nested_chains,
                m.nested_steps, s["energy_nested_vs_exact"].get<double>(), s["nested_seconds"].get<double>());
    }
  }
  if (c.root() && tilt.tweedie.dim() == 2 && tilt.tweedie.size(1) == 2)
    eval::write_scatter_png((fs::path(c.s.run_dir) / "samples.png").string(), tilt.tweedie, tilt.exact);
  write_grids(c, tilt, "");

  if (m.iterates) {  // q_1 = p_ref (f = 0), then each kept iterate f_k; the final one is above
    Json per_k = Json::array();
    auto iterate_tilt = [&](int64_t k) -> std::optional<decltype(tilt)> {
      if (k == final_k) return tilt;
      ddo::PotentialOptions po = c.s.potential;
      po.sample_shape = c.ref.model->sample_shape();
      ddo::Potential fk(po);  // zero output layer: f = 0 for k = 1
      fk->to(c.device);
      if (k > 1 && !ddo::load_da_potential((fs::path(c.s.run_dir) / "ckpt").string(), k, fk)) return std::nullopt;
      return sample_tilt(c, fk, pool, fmt::format("ddo/sir/k{}", k));
    };
    for (int64_t k = 1; k <= final_k; ++k) {
      const auto t = iterate_tilt(k);
      if (!t) continue;  // that iterate's checkpoint was not kept
      write_grids(c, *t, fmt::format("_k{}", k));
      if (c.root()) {
        const double tweedie_reward = mean_reward(t->tweedie);
        per_k.push_back({{"k", k}, {"exact_reward", t->exact_reward}, {"tweedie_reward", tweedie_reward},
                         {"pool_ess", t->pool_stats.ess}, {"pool_kl", t->pool_stats.kl}});
        log::info("q_{}: E[r] exact (SIR) {:.4f}, Tweedie {:.4f}", k, t->exact_reward, tweedie_reward);
      }
    }
    s["iterates"] = per_k;
  }
  return s;
}

int run_ddo(Context& c) {
  const auto& s = c.s;
  fs::create_directories(s.run_dir);
  Json out;
  out["reference"] = c.ref.checkpoint;
  out["objective"] = s.objective.name;
  out["beta"] = s.da.beta;
  out["beta_prime"] = s.da.beta_prime;
  out["dpo_beta"] = s.objective.dpo_beta;
  out["max_ratio"] = s.objective.max_ratio;
  out["n_ref"] = s.n_ref;
  out["world_size"] = c.comm->size();
  out["seed"] = s.seed;

  // 1. Reference samples (drawn once, this rank's shard) and the objective on them.
  auto t0 = std::chrono::steady_clock::now();
  const auto shard = c.shard(s.n_ref);
  log::info("drawing {} reference samples from {} ({} on this rank)", s.n_ref, c.ref.checkpoint, shard.count);
  auto x_ref = c.draw(shard, "ddo/reference").to(c.device);
  auto r = c.score(x_ref);
  auto objective = ddo::make_objective(s.objective, r, shard, c.comm);
  if (s.objective.name == "dpo") out["dpo_optimum"] = objective->value(-r / s.objective.dpo_beta);  // min over q
  std::unique_ptr<EvalPairs> pairs;
  if (s.eval_pairs > 0) {
    pairs = std::make_unique<EvalPairs>(c, s.eval_pairs);
    out["eval_pairs"] = {{"n", s.eval_pairs}, {"checksum", pairs->checksum}, {"dpo_beta", s.objective.dpo_beta}};
  }

  // 2. Dual averaging, resumed from <run.dir>/ckpt when a checkpoint is there.
  torch::manual_seed(derive_seed(s.seed, "ddo/potential_init"));  // the same initial weights on every rank and run
  ddo::PotentialOptions po = s.potential;
  po.sample_shape = c.ref.model->sample_shape();
  ddo::Potential f(po);
  f->to(c.device);
  const auto sig = signature(c);
  const auto ckpt_dir = (fs::path(s.run_dir) / "ckpt").string();
  ddo::DaState state;
  if (s.resume == "auto")
    if (auto saved = ddo::load_da_checkpoint(ckpt_dir, f, sig)) state = *saved;
  out["resumed_at_k"] = state.next_k;
  ddo::DaOptions da = s.da;
  da.fit.seed = derive_seed(s.seed, "ddo/fit");
  ddo::DaHooks hooks;
  hooks.on_record = [&](const ddo::DaRecord& rec) {
    log::info("q_{}: {} = {:.5f}  KL = {:.4f}  G = {:.5f}  E_q[r] = {:.4f}  ESS = {:.0f}  fit rmse = {:.3g} (target "
              "std {:.3g}){}",
              rec.k, s.objective.name, rec.objective, rec.kl, rec.regularised, rec.reward, rec.ess, rec.fit_rmse,
              rec.target_std, std::isnan(rec.heldout) ? "" : fmt::format("  held-out DPO = {:.5f}", rec.heldout));
  };
  const std::string config_yaml = c.cfg.to_yaml(/*resolve=*/true);
  hooks.on_step = [&](const ddo::DaState& st) {
    ddo::save_da_checkpoint(ckpt_dir, f, st, config_yaml, sig, c.comm, int(s.da.iterations + 2));
    ddo::maybe_inject_kill(st.next_k);
  };
  if (pairs) {
    hooks.heldout = [&](ddo::Potential& pot) {
      torch::NoGradGuard no_grad;
      auto fa = pot->forward(pairs->xa.to(c.device)).to(torch::kDouble).cpu();
      auto fb = pot->forward(pairs->xb.to(c.device)).to(torch::kDouble).cpu();
      return pairs->loss(c, fb - fa).first;  // ℓ(x_a) − ℓ(x_b) = f(x_b) − f(x_a): Z cancels
    };
  }
  auto records = ddo::run_dual_averaging(f, x_ref, r, *objective, da, state, hooks, shard, c.comm);
  Json iters = Json::array();
  for (const auto& rec : records) iters.push_back(record_json(rec));
  out["iterations"] = iters;
  out["da_seconds"] = seconds_since(t0);
  if (c.root()) torch::save(f, (fs::path(s.run_dir) / "potential.pt").string());
  f->eval();
  for (auto& p : f->parameters()) p.requires_grad_(false);

  // 3. Sampling the final tilt: exact (SIR), Tweedie and nested h-transform.
  out["sampling"] = evaluate_sampling(c, f, records.empty() ? 1 : records.back().k);
  if (c.root()) write_json((fs::path(s.run_dir) / "ddo.json").string(), out);
  c.comm->barrier();
  return 0;
}

// Every checkpoint to evaluate: a file, or a run / ckpt dir (its latest, or with --all-checkpoints every one).
std::vector<std::string> policy_checkpoints(const std::string& path, bool all) {
  if (!all || fs::is_regular_file(path)) return {models::resolve_checkpoint(path)};
  const auto dir = fs::exists(fs::path(path) / "ckpt") ? (fs::path(path) / "ckpt").string() : path;
  ckpt::CheckpointStore store(dir);
  std::vector<std::string> out;
  for (auto step : store.steps()) out.push_back(store.path(step));
  DUALIGN_CHECK(!out.empty(), "--policy {}: no checkpoints in {}", path, dir);
  return out;
}

// True DPO objective of trained diffusion policies on the held-out pairs: ℓ = log q_θ − log p_ref by PF-ODE.
int evaluate_policies(Context& c, const DdoArgs& a) {
  DUALIGN_CHECK(c.s.eval_pairs > 0, "--policy needs ddo.eval_pairs > 0 (the held-out pairs to evaluate on)");
  DUALIGN_CHECK(!a.out.empty(), "--policy needs --out FILE.json");
  EvalPairs pairs(c, c.s.eval_pairs);
  diffusion::LikelihoodConfig lc;
  lc.time.num_steps = a.ode_steps;
  lc.divergence = a.divergence;
  lc.hutchinson_probes = a.probes;
  lc.time_power = a.ode_power;
  // Hutchinson probes are common random numbers: the same x gets the same probes under the reference and every
  // policy, so their estimation noise largely cancels in ℓ = log q_θ − log p_ref.
  auto log_p = [&](models::ScoreModel& model, const diffusion::NoiseSchedule& schedule, const torch::Tensor& x,
                   const char* half) {
    // Continuous time s goes to the network as is: the sinusoidal embedding takes fractional timesteps (as in
    // diffusers), while truncating to integers would put the model at the wrong noise level inside small steps.
    diffusion::ScoreFn fn = [&](const torch::Tensor& xt, const torch::Tensor& t) { return model.forward(xt, t, {}); };
    std::vector<torch::Tensor> parts;
    for (int64_t start = 0; start < x.size(0); start += c.spec.batch_size) {
      auto xb = x.narrow(0, start, std::min(c.spec.batch_size, x.size(0) - start)).to(c.device);
      auto gen = at::make_generator<at::CPUGeneratorImpl>(
          derive_seed(c.s.seed, std::string("ddo/policy_probes/") + half, {pairs.shard.begin + start}));
      lc.generator = gen;
      parts.push_back(diffusion::pf_ode_log_likelihood(schedule, fn, xb, lc).detach().to(torch::kCPU, torch::kDouble));
    }
    return parts.empty() ? torch::zeros({0}, torch::kDouble) : torch::cat(parts, 0);
  };
  auto t0 = std::chrono::steady_clock::now();
  auto ref_a = log_p(*c.ref.model, *c.ref.schedule, pairs.xa, "a");
  auto ref_b = log_p(*c.ref.model, *c.ref.schedule, pairs.xb, "b");
  Json out;
  out["reference"] = c.ref.checkpoint;
  out["dpo_beta"] = c.s.objective.dpo_beta;
  out["eval_pairs"] = {{"n", c.s.eval_pairs}, {"checksum", pairs.checksum}, {"dpo_beta", c.s.objective.dpo_beta}};
  out["ode_steps"] = a.ode_steps;
  out["divergence"] = a.divergence;
  out["probes"] = a.divergence == "hutchinson" ? a.probes : 0;
  out["world_size"] = c.comm->size();
  Json rows = Json::array();
  for (const auto& policy : a.policies) {
    for (const auto& file : policy_checkpoints(policy, a.all_checkpoints)) {
      auto pol = eval::load_trained_model(file, c.device);
      pol.model->freeze();
      auto la = log_p(*pol.model, *pol.schedule, pairs.xa, "a") - ref_a;
      auto lb = log_p(*pol.model, *pol.schedule, pairs.xb, "b") - ref_b;
      const auto [loss, acc] = pairs.loss(c, la - lb);
      // E_ref[ℓ] = −KL(p_ref ‖ q_θ), over both halves of the pairs.
      const double mean_ell = ddo::sum_all(c.comm, (la.sum() + lb.sum()).item<double>()) / double(2 * c.s.eval_pairs);
      const int64_t step = ckpt::CheckpointReader(file).attr_int("step");
      log::info("{} (step {}): true DPO objective {:.5f}, pair accuracy {:.3f}, E_ref[log q/p_ref] {:.4f}", file, step,
                loss, acc, mean_ell);
      rows.push_back({{"policy", policy}, {"checkpoint", file}, {"step", step}, {"true_dpo", loss},
                      {"pair_accuracy", acc}, {"mean_ref_log_ratio", mean_ell}});
    }
  }
  out["policies"] = rows;
  out["seconds"] = seconds_since(t0);
  if (c.root()) write_json(a.out, out);
  c.comm->barrier();
  return 0;
}

compose::Condition compose_condition(const ddo::ConditionSettings& c) {
  return {.class_id = c.class_id, .prompts_file = c.prompts_file, .prompt = c.prompt, .guidance = c.guidance};
}

int run(const DdoArgs& a) {
  config::ComposeOptions co;
  co.config_dir = resolve_config_dir(a.config_dir);
  co.config_name = a.config_name;
  co.overrides = a.overrides;
  if (a.cfg == "job") {  // print the composed config and exit (no MPI)
    std::fputs(config::Config::compose(co).to_yaml(a.resolve).c_str(), stdout);
    return 0;
  }
  DUALIGN_CHECK(a.cfg.empty(), "--cfg: unknown value '{}' (supported: job)", a.cfg);
  int argc = 0;
  char** argv = nullptr;
  const dist::World& world = dist::init(argc, argv);
  int rc = dist::run_guarded([&] {
    auto comm = dist::make_comm(world, torch::kCPU);
    co.now = std::chrono::system_clock::time_point(std::chrono::seconds(comm->broadcast_int64(
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count())));
    config::Config cfg = config::Config::compose(co);
    auto s = ddo::DdoSettings::read(cfg);
    const int threads = s.threads > 0 ? s.threads
                                      : std::max(1, int(std::thread::hardware_concurrency()) / std::max(1, world.local_size));
    at::set_num_threads(threads);
    const auto device = pick_device(s.device);
    std::unique_ptr<rewards::Reward> reward = rewards::make_reward(cfg.section("ddo").section("reward"), device);
    eval::TrainedModel ref;
    try {
      ref = s.condition.active() ? compose::load_conditioned_model(s.reference, compose_condition(s.condition), device)
                                 : eval::load_model_with_schedule(s.reference, device);
    } catch (const Error& e) {
      fail("config key 'ddo.reference' ({}): {}", s.reference, e.what());
    }
    ref.model->freeze();
    // Points, images or latents; a conditional reference is tilted at one condition (ddo.condition).
    DUALIGN_CHECK(ref.model->num_classes() == 0 && !ref.model->text_conditional(),
                  "ddo.reference {}: this model is {}-conditional; set ddo.condition ({}) to tilt it at one condition",
                  ref.checkpoint, ref.model->text_conditional() ? "text" : "class",
                  ref.model->text_conditional() ? "{prompts: FILE, prompt: 0, guidance: 7.5}" : "{class: C, guidance: 2}");
    DUALIGN_CHECK(a.policies.empty() || !s.condition.active(), "--policy evaluates unconditional policies; this run's "
                  "reference is conditional (ddo.condition)");
    eval::SampleSpec spec;
    spec.sampler = sampler_config(s.sampler.kind, s.sampler.steps, s.sampler.eta);
    spec.batch_size = s.sampler.batch;
    Context c{cfg, s, comm.get(), device, std::move(ref), std::move(reward), spec};
    return a.policies.empty() ? run_ddo(c) : evaluate_policies(c, a);
  });
  dist::finalize();
  return rc;
}

void add_ddo_command(CLI::App& cli) {
  auto a = std::make_shared<DdoArgs>();
  auto* cmd = cli.add_subcommand("ddo", "Direct Distributional Optimization: dual averaging over tilts of a reference, "
                                        "h-transform sampling (dualign ddo experiment=gmm_ddo_dpo [key=value ...])");
  cmd->add_option("--cfg", a->cfg, "Print the composed config and exit ('job')");
  cmd->add_flag("--resolve", a->resolve, "With --cfg job: resolve ${...} interpolations before printing");
  cmd->add_option("--config-dir", a->config_dir, "Config directory (default: $DUALIGN_CONFIG_DIR or ./configs)");
  cmd->add_option("--config-name", a->config_name, "Primary config file name without .yaml")->capture_default_str();
  cmd->add_option("--policy", a->policies,
                  "Instead of DA: evaluate the true DPO objective of these trained diffusion policies (checkpoint "
                  "file, ckpt dir or run dir) on the held-out pairs (ddo.eval_pairs) by PF-ODE log-ratios");
  cmd->add_flag("--all-checkpoints", a->all_checkpoints, "With --policy: every checkpoint in the run's ckpt dir");
  cmd->add_option("--out", a->out, "With --policy: output JSON file");
  cmd->add_option("--ode-steps", a->ode_steps, "With --policy: RK4 steps of the PF-ODE likelihood")->capture_default_str();
  cmd->add_option("--divergence", a->divergence, "With --policy: divergence of the PF-ODE likelihood, exact (D "
                  "backward passes per evaluation) or hutchinson (Rademacher probes, for images)")
      ->check(CLI::IsMember({"exact", "hutchinson"}))
      ->capture_default_str();
  cmd->add_option("--ode-power", a->ode_power, "With --policy: PF-ODE step boundaries at (i/N)^p of the time "
                  "range; p > 1 puts small steps at the clean end (images)")
      ->check(CLI::Range(1.0, 10.0))
      ->capture_default_str();
  cmd->add_option("--probes", a->probes, "With --divergence hutchinson: probes per evaluation")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("overrides", a->overrides, "Config overrides (experiment=gmm_ddo_dpo ddo.beta=0.5 ...)");
  cmd->callback([a] { set_exit_code(run(*a)); });
}

const bool registered = register_command(add_ddo_command);

}  // namespace
}  // namespace dualign::app
