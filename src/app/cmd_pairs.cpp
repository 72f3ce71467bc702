// `dualign data pairs`: preference data from a trained model. Draws two independent samples per pair, scores
// both with a reward (a YAML file for make_reward), labels each pair by Bradley–Terry, and writes a
// `preference_pairs` file (optionally also a `labelled_samples` file for KTO from the same 2N samples).
// Works for points (2-D GMM MLPs) and images (Fashion-MNIST UNets; class-conditional models get a balanced
// class per pair, shared by both samples). Runs on one process (other launcher ranks do nothing).
#include <CLI/CLI.hpp>

#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>

#include <unistd.h>

#include "app/commands.h"
#include "data/h5.h"
#include "data/h5_tensor.h"
#include "data/schema.h"
#include "app/cli_support.h"
#include "eval/sampling.h"
#include "config/yaml_file.h"
#include "rewards/preference.h"
#include "rewards/reward.h"
#include "util/error.h"
#include "util/log.h"
#include "util/seed.h"

namespace dualign::app {
namespace {

struct PairsArgs {
  std::string model, reward_file, out, labelled_out, sampler = "ddim", device = "auto", bt_beta = "1";
  int64_t n = 1000, steps = 50, batch = 256, class_id = -1;
  int threads = 0;
  double eta = 0;
  uint64_t seed = 0;
  bool no_ema = false;
};

double parse_beta(const std::string& text) {
  if (text == "inf" || text == "+inf") return std::numeric_limits<double>::infinity();
  double b = 0;
  try {
    size_t used = 0;
    b = std::stod(text, &used);
    DUALIGN_CHECK(used == text.size(), "trailing characters");
  } catch (const std::exception&) {
    fail("--bt-beta: expected a positive number or inf, got '{}'", text);
  }
  DUALIGN_CHECK(b > 0, "--bt-beta: expected a positive number or inf, got '{}'", text);
  return b;
}

// Rows of `a` where `take_a`, else of `b` (any sample shape).
torch::Tensor select_rows(const torch::Tensor& take_a, const torch::Tensor& a, const torch::Tensor& b) {
  auto mask = take_a.view({-1});
  for (int64_t d = 1; d < a.dim(); ++d) mask = mask.unsqueeze(-1);
  return torch::where(mask, a, b);
}

// Root attributes shared by both output files: where the samples and the labels came from.
void write_provenance(h5::File& f, const PairsArgs& a, const eval::TrainedModel& m, const rewards::Reward& reward,
                      double beta) {
  f.set_attr("/", "generator", "dualign data pairs");
  f.set_attr("/", "model", m.checkpoint);
  f.set_attr("/", "model_description", m.model->describe());
  f.set_attr("/", "reward", reward.describe());
  f.set_attr("/", "reward_file", std::filesystem::absolute(a.reward_file).string());
  f.set_attr("/", "bradley_terry_beta", beta);
  f.set_attr("/", "seed", static_cast<int64_t>(a.seed));
  f.set_attr("/", "sampler", a.sampler);
  f.set_attr("/", "sampler_steps", a.steps);
  f.set_attr("/", "sampler_eta", a.eta);
  f.set_attr("/", "weights", a.no_ema ? "model" : "ema if present");
}

// Creates the output's directory and fails now, not after minutes of sampling, if it cannot be written.
void check_writable(const std::string& path) {
  const auto dir = std::filesystem::absolute(path).parent_path();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  DUALIGN_CHECK(!ec && access(dir.c_str(), W_OK) == 0, "output '{}': directory {} cannot be created or written",
                path, dir.string());
}

void build_pairs(const PairsArgs& a) {
  if (launcher_rank() != 0) return;
  check_writable(a.out);
  if (!a.labelled_out.empty()) check_writable(a.labelled_out);
  if (a.threads > 0) torch::set_num_threads(a.threads);
  DUALIGN_CHECK(a.n > 0, "-n must be positive, got {}", a.n);
  const double beta = parse_beta(a.bt_beta);
  const auto device = pick_device(a.device);
  auto reward = rewards::make_reward(config::config_from_yaml_file(a.reward_file).root(), device);
  auto m = eval::load_trained_model(a.model, device, !a.no_ema);
  const auto cond = class_condition(a.n, a.class_id, num_classes_of(m.checkpoint), a.model);
  log::info("pairs: {} pairs from {} ({}), reward {}, Bradley-Terry beta {}", a.n, m.checkpoint, m.model->describe(),
            reward->describe(), beta);

  eval::SampleSpec spec;
  spec.sampler = sampler_config(a.sampler, a.steps, a.eta);
  spec.batch_size = a.batch;
  auto draw = [&](const char* which) {
    auto x = eval::sample(*m.model, *m.schedule, spec, a.n, derive_seed(a.seed, which), cond);
    return x.dim() > 2 ? x.clamp(-1, 1) : x;  // images: the data range the reward and trainer expect
  };
  auto xa = draw("pairs/sample_a"), xb = draw("pairs/sample_b");
  auto ra = reward->score(xa, cond).to(torch::kCPU, torch::kFloat), rb = reward->score(xb, cond).to(torch::kCPU, torch::kFloat);

  auto gen = at::make_generator<at::CPUGeneratorImpl>(derive_seed(a.seed, "pairs/labels"));
  auto a_wins = rewards::bradley_terry_labels(ra, rb, beta, gen);
  auto winner = select_rows(a_wins, xa, xb), loser = select_rows(a_wins, xb, xa);
  auto score_w = torch::where(a_wins, ra, rb), score_l = torch::where(a_wins, rb, ra);

  const h5::WriteOptions opts{xa.dim() > 2 ? 256 : 0, 4};
  {
    auto f = h5::File::create(a.out);
    data::write_format_attrs(f, "preference_pairs");
    write_provenance(f, a, m, *reward, beta);
    h5::write_tensor(f, "winner", winner, opts);
    h5::write_tensor(f, "loser", loser, opts);
    h5::write_tensor(f, "score_w", score_w, {0, 4});
    h5::write_tensor(f, "score_l", score_l, {0, 4});
    if (cond.class_id.defined()) h5::write_tensor(f, "class_id", cond.class_id.to(torch::kCPU, torch::kLong), {0, 4});
    f.close();
  }
  std::fputs(data::validate(a.out, "preference_pairs").str().c_str(), stdout);
  auto s = rewards::summarize_pairs(score_w, score_l, beta);
  std::printf("pairs %lld\nmean_score_winner %.6g\nmean_score_loser %.6g\nagreement %.4f\nexpected_agreement %.4f\n"
              "mean_abs_gap %.6g\n",
              static_cast<long long>(a.n), s.mean_winner, s.mean_loser, s.agreement, s.expected_agreement,
              s.mean_abs_gap);

  if (a.labelled_out.empty()) return;
  auto samples = torch::cat({xa, xb}), scores = torch::cat({ra, rb});
  auto d = rewards::kto_desirability(scores, beta, gen);
  {
    auto f = h5::File::create(a.labelled_out);
    data::write_format_attrs(f, "labelled_samples");
    write_provenance(f, a, m, *reward, beta);
    f.set_attr("/", "desirability", "Bernoulli(sigmoid(beta * (reward - median reward)))");
    f.set_attr("/", "reward_median", d.median);
    h5::write_tensor(f, "samples", samples, opts);
    h5::write_tensor(f, "desirable", d.desirable.to(torch::kInt8), {0, 4});
    h5::write_tensor(f, "score", scores, {0, 4});
    if (cond.class_id.defined())
      h5::write_tensor(f, "class_id", torch::cat({cond.class_id, cond.class_id}).to(torch::kCPU, torch::kLong), {0, 4});
    f.close();
  }
  std::fputs(data::validate(a.labelled_out, "labelled_samples").str().c_str(), stdout);
  auto desirable = d.desirable;
  std::printf("labelled %lld\ndesirable_fraction %.4f\nmean_score_desirable %.6g\nmean_score_undesirable %.6g\n",
              static_cast<long long>(samples.size(0)), desirable.to(torch::kDouble).mean().item<double>(),
              scores.index({desirable}).to(torch::kDouble).mean().item<double>(),
              scores.index({desirable.logical_not()}).to(torch::kDouble).mean().item<double>());
}

void add_pairs_command(CLI::App& cli) {
  // A sub-command of `data` when that command is registered first (cmd_data.cpp links before cmd_pairs.cpp);
  // otherwise (e.g. data left out of a developer build) a top-level `dualign pairs`.
  CLI::App* parent = &cli;
  try {
    parent = cli.get_subcommand("data");
  } catch (const CLI::OptionNotFound&) {
  }
  auto a = std::make_shared<PairsArgs>();
  auto* cmd = parent->add_subcommand("pairs", "Preference pairs (and KTO samples) from a trained model, labelled by "
                                              "a reward through Bradley-Terry");
  cmd->add_option("--model", a->model, "Checkpoint file, ckpt dir or run dir of the model to sample")->required();
  cmd->add_option("-n,--count", a->n, "Number of pairs (2n samples are drawn)")->capture_default_str();
  cmd->add_option("--reward", a->reward_file, "Reward YAML (e.g. configs/reward/gmm_target.yaml)")->required();
  cmd->add_option("--bt-beta", a->bt_beta, "Bradley-Terry inverse temperature: P(a>b) = sigmoid(beta (r_a - r_b)); "
                                           "inf = deterministic")->capture_default_str();
  cmd->add_option("--seed", a->seed, "Seed of the samples and the labels")->capture_default_str();
  cmd->add_option("--sampler", a->sampler, "ddim | ddpm")->capture_default_str();
  cmd->add_option("--steps", a->steps, "Sampler steps")->capture_default_str();
  cmd->add_option("--eta", a->eta, "DDIM eta")->capture_default_str();
  cmd->add_option("--out", a->out, "Output preference_pairs file")->required();
  cmd->add_option("--labelled-out", a->labelled_out, "Also write the 2n samples as a labelled_samples file (KTO)");
  cmd->add_option("--batch", a->batch, "Rows per model call")->capture_default_str();
  cmd->add_option("--class-id", a->class_id, "Class-conditional models: this class for every pair (-1 = balanced)")
      ->capture_default_str();
  cmd->add_option("--device", a->device, "auto | cpu | cuda[:i]")->capture_default_str();
  cmd->add_option("--threads", a->threads, "Torch intra-op threads (0 = torch default)")->capture_default_str();
  cmd->add_flag("--no-ema", a->no_ema, "Use the raw weights even if the checkpoint has EMA weights");
  cmd->callback([a] { build_pairs(*a); });
}

const bool registered = register_command(add_pairs_command);

}  // namespace
}  // namespace dualign::app
