// `dualign compose`: AND (product) composition of pretrained diffusion models (src/compose/README.md).
//   --mode dual    Algorithm 3: per round sample DDIM on ε_λ = Σ λ_i ε_i, estimate KL(p ‖ q_i) by Lemma 2 with the
//                  surrogate score, all-reduce, λ ← proj_simplex(λ + η KL̂) (dual::DualAscent).
//   --mode primal  Algorithm 2: per round distill a student score model by DSM on annealed-Langevin samples of
//                  q_AND^{(λ)}, then the same dual step with the student's samples and score.
// Under mpirun every rank samples its share; λ is identical on all ranks. The state is checkpointed in
// OUT/ckpt after every round and resumed from there. At the end both settings — equal weights and the final
// λ — are evaluated (KL̂, per-model rewards, exact answers for 2-D Gaussian-mixture components) and written to
// OUT/compose.json (rank 0), with sample plots OUT/samples_equal.png and OUT/samples_final.png.
#include <CLI/CLI.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "app/commands.h"
#include "compose/composer.h"
#include "compose/evaluate.h"
#include "dist/comm.h"
#include "dist/runtime.h"
#include "app/cli_support.h"
#include "eval/png.h"
#include "eval/samples_io.h"
#include "config/yaml_file.h"
#include "util/error.h"
#include "util/log.h"

namespace dualign::app {
namespace {

using Json = nlohmann::ordered_json;

struct ComposeArgs {
  std::vector<std::string> models, rewards;
  std::string out, mode = "dual", device = "cpu";
  std::vector<double> init;
  std::vector<int64_t> classes;  // concept composition: one class-conditional model under these classes
  std::string prompts;           // concept composition: one text-conditional model under these prompts
  double guidance = 1.0;
  int64_t rounds = 10, n = 512, strata = 10, steps = 50, batch = 512, eval_n = 1000;
  double dual_lr = 0.5, dual_lr_decay = 1.0, slack_ema = 0.0;
  int64_t levels = 50, corrector_steps = 10, mcmc_n = 2048, distill_steps = 300, distill_batch = 512;
  double langevin_step = 0.02, langevin_scale = 1.0, distill_lr = 2e-3;
  uint64_t seed = 0;
  int threads = 0;
  bool no_exact = false, oracle = false;
};

void write_json_atomically(const std::string& path, const Json& j) {
  {
    std::ofstream file(path + ".tmp");
    DUALIGN_CHECK(file.good(), "cannot write {}", path);
    file << j.dump(2) << "\n";
    DUALIGN_CHECK(file.good(), "write failed: {}", path);
  }
  std::filesystem::rename(path + ".tmp", path);
}

void write_plot(const std::string& path, const torch::Tensor& x) {
  if (x.dim() == 4 && (x.size(1) == 1 || x.size(1) == 3)) {
    eval::GridOptions g;
    g.nrow = 10;
    g.max_images = 100;
    eval::write_image_grid(path, x, g);
  } else if (x.dim() == 2 && x.size(1) == 2) {
    eval::write_scatter_png(path, x, {}, 400, 5.0);
  }
}

int run(const ComposeArgs& a, const dist::World& world) {
  if (a.threads > 0) at::set_num_threads(a.threads);
  const auto device = pick_device(a.device);
  auto comm = dist::make_comm(world, torch::kCPU);
  const bool concepts = !a.classes.empty() || !a.prompts.empty();
  if (concepts) {
    const char* flag = a.prompts.empty() ? "--classes" : "--prompts";
    DUALIGN_CHECK(a.classes.empty() || a.prompts.empty(), "give --classes or --prompts, not both");
    DUALIGN_CHECK(a.models.size() == 1, "{} composes one {}-conditional model; got {} models", flag,
                  a.prompts.empty() ? "class" : "text", a.models.size());
    DUALIGN_CHECK(!a.oracle, "{}: --oracle needs models trained on Gaussian mixtures", flag);
    DUALIGN_CHECK(a.prompts.empty() || a.mode == "dual", "--prompts: only --mode dual (the primal student would "
                  "distil a text-conditional network)");
  }
  DUALIGN_CHECK(concepts || a.guidance == 1.0, "--guidance applies to --classes or --prompts");
  auto loaded = !a.classes.empty()   ? compose::load_class_components(a.models.front(), a.classes, a.guidance, device)
                : !a.prompts.empty() ? compose::load_prompt_components(a.models.front(), a.prompts, a.guidance, device)
                                     : compose::load_models(a.models, device);
  const size_t m = loaded.components.size();
  if (a.oracle) {  // the exact ε of each model's training mixture instead of the network (2-D reference runs)
    for (size_t i = 0; i < m; ++i) {
      auto g = compose::training_gmm(a.models[i]);
      DUALIGN_CHECK(g, "--oracle: model {} was not trained on a Gaussian mixture (data.kind gmm)", a.models[i]);
      loaded.components[i].eps = compose::gmm_eps(*g, loaded.schedule());
    }
  }
  DUALIGN_CHECK(a.rewards.empty() || a.rewards.size() == m, "--rewards: {} files for {} models (one per model, in order)",
                a.rewards.size(), m);

  compose::ComposeSettings s;
  s.mode = a.mode;
  s.rounds = a.rounds;
  s.n = a.n;
  s.strata = a.strata;
  s.sampler = sampler_config("ddim", a.steps, 0.0);
  s.batch = a.batch;
  s.dual.projection = "simplex";
  s.dual.init = a.init.empty() ? std::vector<double>(m, 1.0 / double(m)) : a.init;
  DUALIGN_CHECK(s.dual.init.size() == m, "--init: {} weights for {} models", s.dual.init.size(), m);
  s.dual.lr = a.dual_lr;
  s.dual.lr_decay = a.dual_lr_decay;
  s.dual.slack_ema = a.slack_ema;
  s.seed = a.seed;
  s.langevin = {a.levels, a.corrector_steps, a.langevin_step, a.langevin_scale};
  s.mcmc_n = a.mcmc_n;
  s.distill_steps = a.distill_steps;
  s.distill_batch = a.distill_batch;
  s.distill_lr = a.distill_lr;
  s.checkpoint_dir = (std::filesystem::path(a.out) / "ckpt").string();
  std::filesystem::create_directories(a.out);

  std::shared_ptr<models::ScoreModel> student;
  if (a.mode == "primal") {  // warm start from q1 (the first class's model for --classes)
    student = models::load_score_model(a.models.front(), device);
    if (!a.classes.empty()) student = compose::fixed_class_model(student, a.classes.front());
  }
  compose::Composer composer(loaded.components, loaded.schedule(), loaded.sample_shape, s, *comm, device, student);
  log::info("compose ({}): {} models, {} ranks, {} samples per round, λ = {}", a.mode, m, comm->size(), a.n,
            fmt::format("{:.4f}", fmt::join(composer.lambda(), ", ")));
  composer.run([&](const compose::RoundRecord& r) {
    log::info("round {}: KL̂ = [{}] (se {:.3f})  λ → [{}]{}  ({:.1f} s)", r.round + 1,
              fmt::format("{:.4f}", fmt::join(r.kl, ", ")), *std::max_element(r.kl_se.begin(), r.kl_se.end()),
              fmt::format("{:.4f}", fmt::join(r.lambda_next, ", ")),
              a.mode == "primal" ? fmt::format("  DSM loss {:.4f}", r.dsm_loss) : "", r.seconds);
  });

  // Evaluation: equal weights vs the final λ.
  std::vector<std::unique_ptr<rewards::Reward>> rewards;
  for (const auto& path : a.rewards) {
    auto cfg = config::config_from_yaml_file(path);
    try {
      rewards.push_back(rewards::make_reward(cfg.root(), device));
    } catch (const Error& e) {
      fail("--rewards {}: {}", path, e.what());
    }
  }
  compose::EvalInputs in;
  in.rewards = &rewards;
  in.n = a.eval_n;
  in.seed = a.seed;
  std::unique_ptr<compose::GridProduct> grid;
  if (!a.no_exact && !concepts) {  // exact answers for separately trained 2-D mixture models
    for (const auto& model : a.models)
      if (auto g = compose::training_gmm(model)) in.gmms.push_back(*g);
    if (in.gmms.size() != m) in.gmms.clear();
    if (!in.gmms.empty() && in.gmms.front().dim() == 2) {
      grid = std::make_unique<compose::GridProduct>(in.gmms);
      in.grid = grid.get();
    }
  }
  const std::vector<double> equal(m, 1.0 / double(m));
  const auto final_lambda = composer.lambda();
  Json out;
  out["mode"] = a.mode;
  out["oracle"] = a.oracle;
  out["models"] = a.models;
  if (!a.classes.empty()) out["classes"] = a.classes, out["guidance"] = a.guidance;
  if (!a.prompts.empty()) {
    out["prompts_file"] = a.prompts, out["guidance"] = a.guidance;
    for (const auto& c : loaded.components) out["components"].push_back(c.name);
  }
  out["rewards"] = a.rewards;
  out["world_size"] = comm->size();
  out["settings"] = {{"rounds", a.rounds}, {"n", a.n},         {"strata", a.strata},   {"ddim_steps", a.steps},
                     {"dual_lr", a.dual_lr}, {"dual_lr_decay", a.dual_lr_decay}, {"seed", a.seed}};
  if (a.mode == "primal")
    out["settings"].update({{"mcmc_n", a.mcmc_n}, {"levels", a.levels}, {"corrector_steps", a.corrector_steps},
                            {"langevin_step", a.langevin_step}, {"langevin_scale", a.langevin_scale}, {"distill_steps", a.distill_steps},
                            {"distill_batch", a.distill_batch}, {"distill_lr", a.distill_lr}});
  out["history"] = Json::parse(compose::history_json(composer.history()));
  out["final_lambda"] = final_lambda;
  Json ev;
  torch::Tensor x_equal, x_final;
  const std::string base = a.mode == "dual" ? "ddim" : "langevin";
  ev["equal"] = compose::evaluate_setting(composer, *comm, equal, base, in, &x_equal);
  ev["final"] = compose::evaluate_setting(composer, *comm, final_lambda, base, in, &x_final);
  if (a.mode == "primal") ev["student"] = compose::evaluate_setting(composer, *comm, final_lambda, "student", in, nullptr);
  out["evaluation"] = ev;
  if (grid) {
    auto star = grid->minimax_lambda();
    out["exact"] = {{"minimax_lambda", star}, {"kl_at_minimax", grid->kl(star)},
                    {"kl_equal", grid->kl(equal)}, {"kl_final", grid->kl(final_lambda)}};
  }
  if (comm->rank() == 0) {
    write_json_atomically((std::filesystem::path(a.out) / "compose.json").string(), out);
    write_plot((std::filesystem::path(a.out) / "samples_equal.png").string(), x_equal);
    write_plot((std::filesystem::path(a.out) / "samples_final.png").string(), x_final);
    // Samples that are not images (latents of an SD UNet) go to `samples` files for the decoding tools
    // (data_tools/evaluate_samples.py), with the composed prompts in the attributes.
    if (!(x_final.dim() == 4 && (x_final.size(1) == 1 || x_final.size(1) == 3)) && x_final.dim() >= 3) {
      for (auto [name, x, lambda] : {std::tuple{"equal", x_equal, equal}, std::tuple{"final", x_final, final_lambda}}) {
        eval::SamplesFile f;
        f.samples = x;
        f.text_attrs["model"] = a.models.front();
        f.text_attrs["composition"] = fmt::format("λ = [{:.6f}]", fmt::join(lambda, ", "));
        for (const auto& c : loaded.components) f.text_attrs["components"] += c.name + "\n";
        f.text_attrs["sampler"] = "ddim";
        f.int_attrs["steps"] = a.steps;
        f.int_attrs["seed"] = static_cast<int64_t>(a.seed);
        eval::write_samples((std::filesystem::path(a.out) / fmt::format("samples_{}.h5", name)).string(), f);
      }
    }
    const auto& e = ev["equal"];
    const auto& f = ev["final"];
    log::info("equal weights: KL̂ ratio {:.3f}{}", e["kl_estimate_ratio"].get<double>(),
              e.contains("reward_min") ? fmt::format(", min reward {:.4f}", e["reward_min"].get<double>()) : "");
    log::info("final λ:       KL̂ ratio {:.3f}{}", f["kl_estimate_ratio"].get<double>(),
              f.contains("reward_min") ? fmt::format(", min reward {:.4f}", f["reward_min"].get<double>()) : "");
    log::info("wrote {}", (std::filesystem::path(a.out) / "compose.json").string());
  }
  comm->barrier();
  return 0;
}

void add_compose_command(CLI::App& cli) {
  auto a = std::make_shared<ComposeArgs>();
  auto* cmd = cli.add_subcommand("compose", "AND composition of pretrained models: balance KL(p ‖ q_i) with dual weights");
  cmd->add_option("--models", a->models, "Trained models (checkpoint files, ckpt dirs or run dirs), >= 2; or one with --classes or --prompts")->required();
  cmd->add_option("--classes", a->classes,
                  "Concept composition: compose the one class-conditional model of --models under these classes")
      ->expected(2, 64);
  cmd->add_option("--prompts", a->prompts,
                  "Concept composition: compose the one text-conditional model of --models (a checkpoint or a "
                  "diffusers directory, e.g. SD-1.5) under the prompts of this file (data_tools/encode_prompts.py)");
  cmd->add_option("--guidance", a->guidance, "With --classes or --prompts: classifier-free guidance scale of each concept's ε (1: none)")
      ->capture_default_str();
  cmd->add_option("--out", a->out, "Output directory (compose.json, ckpt/, samples_*.png)")->required();
  cmd->add_option("--mode", a->mode, "dual (Algorithm 3) | primal (Algorithm 2: distil a student)")->capture_default_str();
  cmd->add_option("--rewards", a->rewards, "One reward YAML per model (e.g. a classifier's log p(model's classes | x))");
  cmd->add_option("--rounds", a->rounds, "Dual steps")->capture_default_str();
  cmd->add_option("-n,--count", a->n, "Samples per dual step (all ranks together)")->capture_default_str();
  cmd->add_option("--strata", a->strata, "KL timesteps per sample (stratified in log-SNR)")->capture_default_str();
  cmd->add_option("--steps", a->steps, "DDIM steps")->capture_default_str();
  cmd->add_option("--batch", a->batch, "Rows per model call")->capture_default_str();
  cmd->add_option("--dual-lr", a->dual_lr, "Dual step size η")->capture_default_str();
  cmd->add_option("--dual-lr-decay", a->dual_lr_decay, "η multiplied by this after every step")->capture_default_str();
  cmd->add_option("--slack-ema", a->slack_ema, "EMA of the KL estimates (0: none)")->capture_default_str();
  cmd->add_option("--init", a->init, "Initial weights (default uniform)");
  cmd->add_option("--eval-n", a->eval_n, "Samples per evaluated setting")->capture_default_str();
  cmd->add_option("--levels", a->levels, "primal: annealed Langevin noise levels")->capture_default_str();
  cmd->add_option("--corrector-steps", a->corrector_steps, "primal: ULA steps per level")->capture_default_str();
  cmd->add_option("--langevin-step", a->langevin_step, "primal: ULA step h = c (ᾱ_t κ² + 1 − ᾱ_t), this is c")->capture_default_str();
  cmd->add_option("--langevin-scale", a->langevin_scale, "primal: κ, the data's scale in the ULA step")->capture_default_str();
  cmd->add_option("--mcmc-n", a->mcmc_n, "primal: Langevin samples per round")->capture_default_str();
  cmd->add_option("--distill-steps", a->distill_steps, "primal: DSM steps per round")->capture_default_str();
  cmd->add_option("--distill-batch", a->distill_batch, "primal: global DSM batch")->capture_default_str();
  cmd->add_option("--distill-lr", a->distill_lr, "primal: Adam learning rate")->capture_default_str();
  cmd->add_flag("--oracle", a->oracle, "Compose the exact ε of each model's training Gaussian mixture instead of the network");
  cmd->add_flag("--no-exact", a->no_exact, "Skip the exact answers for Gaussian-mixture components");
  cmd->add_option("--seed", a->seed, "Seed")->capture_default_str();
  cmd->add_option("--device", a->device, "auto | cpu | cuda[:N]")->capture_default_str();
  cmd->add_option("--threads", a->threads, "CPU threads per rank (0: OMP_NUM_THREADS or all cores)")->capture_default_str();
  cmd->callback([a] {
    int argc = 0;
    char** argv = nullptr;
    const dist::World& world = dist::init(argc, argv);
    int rc = dist::run_guarded([&] { return run(*a, world); });
    dist::finalize();
    set_exit_code(rc);
  });
}

const bool registered = register_command(add_compose_command);

}  // namespace
}  // namespace dualign::app
