// `dualign data <sub>`: dataset tools. validate checks a file against its schema; fmnist, gmm, gmm-pairs and
// gmm-labelled write datasets (formats in src/data/README.md).
#include <CLI/CLI.hpp>

#include <cstdio>

#include "app/commands.h"
#include "data/schema.h"
#include "data/synthetic.h"
#include "util/log.h"

namespace dualign::app {
namespace {

struct DataArgs {
  std::string file, format, idx_dir = "/usr/share/datasets/fashion-mnist", out;
  bool quick = false;
  int64_t n = 10000;
  data::MixtureSpec mix;
  data::OracleSpec oracle;
};

void add_mixture_options(CLI::App* cmd, DataArgs& a) {
  cmd->add_option("--out", a.out, "Output HDF5 file")->required();
  cmd->add_option("-n,--count", a.n, "Number of samples (or pairs)")->capture_default_str();
  cmd->add_option("--components", a.mix.components, "Mixture components on a circle")->capture_default_str();
  cmd->add_option("--radius", a.mix.radius, "Circle radius")->capture_default_str();
  cmd->add_option("--stddev", a.mix.stddev, "Standard deviation of each component")->capture_default_str();
  cmd->add_option("--seed", a.mix.seed, "Random seed")->capture_default_str();
}

void add_oracle_options(CLI::App* cmd, DataArgs& a) {
  cmd->add_option("--target", a.oracle.target, "Reward = -||x - target||^2 (e.g. --target 2 0)")->expected(2);
  cmd->add_option("--beta", a.oracle.beta, "Bradley-Terry inverse temperature")->capture_default_str();
}

void add_data_command(CLI::App& cli) {
  auto args = std::make_shared<DataArgs>();
  auto* data = cli.add_subcommand("data", "Dataset tools: validate, fmnist, gmm, gmm-pairs, gmm-labelled");
  data->require_subcommand(1);

  auto* validate = data->add_subcommand("validate", "Check a dataset file against its schema and summarise it");
  validate->add_option("file", args->file, "HDF5 dataset file")->required();
  validate->add_option("--format", args->format, "Require this format (images, preference_pairs, ...)");
  validate->add_flag("--quick", args->quick, "Check the structure only (do not read every value)");
  validate->callback([args] {
    auto summary = data::validate(args->file, args->format, !args->quick);
    std::fputs(summary.str().c_str(), stdout);
    std::puts("OK");
  });

  auto* fmnist = data->add_subcommand("fmnist", "Fashion-MNIST IDX files -> fmnist-{train,test}.h5 (format images)");
  fmnist->add_option("--idx-dir", args->idx_dir, "Directory with the (gzipped) IDX files")->capture_default_str();
  fmnist->add_option("--out", args->out, "Output directory")->required();
  fmnist->callback([args] {
    data::import_fashion_mnist(args->idx_dir, args->out, true);
    for (auto* split : {"train", "test"})
      std::fputs(data::validate(args->out + "/fmnist-" + split + ".h5", "images").str().c_str(), stdout);
  });

  auto* gmm = data->add_subcommand("gmm", "2-D Gaussian-mixture samples (format points)");
  add_mixture_options(gmm, *args);
  gmm->callback([args] { data::write_mixture_points(args->out, args->n, args->mix, true); });

  auto* pairs = data->add_subcommand("gmm-pairs", "2-D mixture preference pairs labelled by a Bradley-Terry oracle");
  add_mixture_options(pairs, *args);
  add_oracle_options(pairs, *args);
  pairs->callback([args] { data::write_mixture_pairs(args->out, args->n, args->mix, args->oracle, true); });

  auto* kto = data->add_subcommand("gmm-labelled", "2-D mixture samples labelled desirable/undesirable (KTO)");
  add_mixture_options(kto, *args);
  add_oracle_options(kto, *args);
  kto->callback([args] { data::write_mixture_labelled(args->out, args->n, args->mix, args->oracle, true); });
}

const bool registered = register_command(add_data_command);

}  // namespace
}  // namespace dualign::app
