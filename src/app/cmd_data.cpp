// `dualign data <sub>`: dataset tools. validate checks a file against its schema; fmnist, gmm, gmm-pairs and
// gmm-labelled write datasets (formats in src/data/README.md).
#include <CLI/CLI.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstdio>
#include <cstdlib>

#include "app/commands.h"
#include "data/loader.h"
#include "data/schema.h"
#include "data/synthetic.h"
#include "util/log.h"

namespace dualign::app {
namespace {

// Rank and world size from the launcher's environment (mpirun, srun) when not given: `peek` needs no MPI.
int env_int(std::initializer_list<const char*> names, int fallback) {
  for (auto* n : names)
    if (const char* v = std::getenv(n)) return std::atoi(v);
  return fallback;
}

struct PeekArgs {
  std::string file;
  int64_t global_batch = 8, batches = 4, epoch = 0, position = 0;
  uint64_t seed = 0;
  int rank = -1, world_size = -1;
};

// Prints, for each of the next batches, this rank's sample ids and the cursor after it (one JSON line each).
void peek(const PeekArgs& a) {
  data::LoaderOptions o;
  o.path = a.file;
  o.global_batch = a.global_batch;
  o.rank = a.rank >= 0 ? a.rank : env_int({"OMPI_COMM_WORLD_RANK", "PMI_RANK", "SLURM_PROCID"}, 0);
  o.world_size = a.world_size >= 0 ? a.world_size : env_int({"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"}, 1);
  o.seed = a.seed;
  data::Loader loader(o, {a.epoch, a.position});
  for (int64_t i = 0; i < a.batches; ++i) {
    auto b = loader.next();
    auto after = loader.cursor();
    std::printf("%s\n", fmt::format(R"({{"rank": {}, "world_size": {}, "cursor": [{}, {}], "indices": [{}], "next_cursor": [{}, {}]}})",
                                    o.rank, o.world_size, b.cursor.epoch, b.cursor.position, fmt::join(b.indices, ", "),
                                    after.epoch, after.position).c_str());
  }
}

struct DataArgs {
  std::string file, format, idx_dir = "/usr/share/datasets/fashion-mnist", out;
  int64_t downsample = 1;
  std::vector<int64_t> classes;
  std::vector<std::string> class_fractions;
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
  auto* data = cli.add_subcommand("data", "Dataset tools: validate, peek, fmnist, gmm, gmm-pairs, gmm-labelled");
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
  fmnist->add_option("--downsample", args->downsample, "Store k x k block means (2: 14x14 images)")->capture_default_str();
  fmnist->add_option("--classes", args->classes, "Keep only these classes in the train split (e.g. --classes 0 1 2)");
  fmnist->add_option("--class-fraction", args->class_fractions,
                     "Keep this fraction of a class in the train split, as CLASS=FRACTION (e.g. 2=0.1 4=0.1 6=0.1)");
  fmnist->callback([args] {
    data::ClassSubset subset{args->classes, {}};
    for (const auto& item : args->class_fractions) {
      auto eq = item.find('=');
      if (eq == std::string::npos) fail("--class-fraction '{}': expected CLASS=FRACTION, e.g. 4=0.1", item);
      try {
        subset.fraction[std::stoll(item.substr(0, eq))] = std::stod(item.substr(eq + 1));
      } catch (const std::exception&) {
        fail("--class-fraction '{}': expected CLASS=FRACTION with numbers, e.g. 4=0.1", item);
      }
    }
    data::import_fashion_mnist(args->idx_dir, args->out, true, args->downsample, subset);
    for (auto* split : {"train", "test"})
      std::fputs(data::validate(args->out + "/fmnist-" + split + ".h5", "images").str().c_str(), stdout);
  });

  auto peek_args = std::make_shared<PeekArgs>();
  auto* pk = data->add_subcommand("peek", "Print this rank's sample ids of the next batches (loader order, JSON lines)");
  pk->add_option("file", peek_args->file, "Dataset file or directory of shards")->required();
  pk->add_option("--global-batch", peek_args->global_batch, "Global batch G")->capture_default_str();
  pk->add_option("--batches", peek_args->batches, "Batches to print")->capture_default_str();
  pk->add_option("--seed", peek_args->seed, "Shuffle seed")->capture_default_str();
  pk->add_option("--epoch", peek_args->epoch, "Start cursor: epoch")->capture_default_str();
  pk->add_option("--position", peek_args->position, "Start cursor: position in the epoch's order")->capture_default_str();
  pk->add_option("--rank", peek_args->rank, "Rank (default: from mpirun/srun environment, else 0)");
  pk->add_option("--world-size", peek_args->world_size, "World size (default: from the environment, else 1)");
  pk->callback([peek_args] { peek(*peek_args); });

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
