// dualign train [--cfg job [--resolve]] [-m] [overrides...]
//   Composes configs/config.yaml with the overrides and trains. Under mpirun every rank runs this; rank 0's
//   clock is broadcast first so `${now:...}` (the run dir) resolves identically on all ranks.
//   -m/--multirun expands sweeps (a=1,2 b=choice(x,y) c=range(0,3), config/sweep.h) into separate runs, launched one
//   after another as child processes; it refuses to run inside an MPI job (launch/launchers/sweep.sh puts each
//   run under mpirun, reading the runs from `-m --print-runs`: one line per run, each override one shell word).
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>

#include "app/commands.h"
#include "app/config_dir.h"
#include "config/config.h"
#include "config/overrides.h"
#include "dist/comm.h"
#include "dist/runtime.h"
#include "methods/registry.h"
#include "train/trainer.h"
#include "util/error.h"
#include "util/log.h"

extern char** environ;

namespace dualign::app {
namespace {

struct TrainArgs {
  std::string cfg;  // "" or "job"
  bool resolve = false;
  bool multirun = false;
  bool print_runs = false;
  std::string config_dir, config_name = "config";
  std::vector<std::string> overrides;
};

config::ComposeOptions compose_options(const TrainArgs& a, std::chrono::system_clock::time_point now) {
  config::ComposeOptions o;
  o.config_dir = resolve_config_dir(a.config_dir);
  o.config_name = a.config_name;
  o.overrides = a.overrides;
  o.now = now;
  return o;
}

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "SLURM_PROCID"})
    if (std::getenv(v)) return true;
  return false;
}

std::string timestamp(std::chrono::system_clock::time_point t, const char* fmt) {
  auto tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  localtime_r(&tt, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, fmt, &tm);
  return buf;
}

// The override as one shell word: unchanged when it is plain, else in single quotes ('[0.9,0.99]', spaces).
// launch/launchers/sweep.sh reads --print-runs lines back with the shell.
std::string shell_quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.+=/:@%,-") ==
                        std::string::npos)
    return s;
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

int run_child(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(), environ) != 0)
    fail("multirun: cannot start '{}'", args[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int multirun(const TrainArgs& a) {
  if (launched_by_mpi())
    fail("train -m: multirun starts separate runs and must not run inside an MPI job; run it directly, or use "
         "launch/launchers/sweep.sh to launch each run under mpirun");
  auto now = std::chrono::system_clock::now();
  auto runs = config::expand_multirun(a.overrides);
  std::string sweep_dir = "multirun/" + timestamp(now, "%Y-%m-%d/%H-%M-%S");
  for (size_t i = 0; i < runs.size(); ++i) {
    TrainArgs one = a;
    one.overrides = runs[i];
    one.overrides.push_back("++run.job_num=" + std::to_string(i));
    if (!a.cfg.empty() || a.print_runs) {
      config::compose(compose_options(one, now));  // validate every run before anything starts
      std::string line;
      for (const auto& o : runs[i]) line += (line.empty() ? "" : " ") + shell_quote(o);
      std::printf("%s\n", line.c_str());
      continue;
    }
    one.overrides.push_back("run.dir=" + sweep_dir + "/" + std::to_string(i));
    std::vector<std::string> args{"dualign", "train", "--config-dir", compose_options(one, now).config_dir.string(),
                                  "--config-name", a.config_name};
    args.insert(args.end(), one.overrides.begin(), one.overrides.end());
    std::printf("[multirun] run %zu/%zu: %s\n", i + 1, runs.size(), sweep_dir.c_str());
    std::fflush(stdout);
    if (int rc = run_child(args); rc != 0) {
      log::error("multirun: run {} failed with exit code {}; stopping the sweep", i, rc);
      return rc;
    }
  }
  return 0;
}

int train(const TrainArgs& a) {
  if (a.multirun) return multirun(a);
  if (a.cfg == "job") {  // composing needs no MPI: print and exit
    config::Config cfg = config::Config::compose(compose_options(a, std::chrono::system_clock::now()));
    std::fputs(cfg.to_yaml(a.resolve).c_str(), stdout);
    return 0;
  }
  if (!a.cfg.empty()) fail("--cfg: unknown value '{}' (supported: job)", a.cfg);

  int argc = 0;
  char** argv = nullptr;
  const dist::World& world = dist::init(argc, argv);
  int rc = dist::run_guarded([&] {
    auto comm = dist::make_comm(world, torch::kCPU);
    auto now_s = comm->broadcast_int64(std::chrono::duration_cast<std::chrono::seconds>(
                                           std::chrono::system_clock::now().time_since_epoch())
                                           .count());
    comm.reset();
    auto now = std::chrono::system_clock::time_point(std::chrono::seconds(now_s));
    config::Config cfg = config::Config::compose(compose_options(a, now));
    return train::run_training(cfg, world);
  });
  dist::finalize();
  return rc;
}

void add_train_command(CLI::App& cli) {
  auto args = std::make_shared<TrainArgs>();
  auto* cmd = cli.add_subcommand("train", "Train a model: dualign train [options] [key=value | +key=value | "
                                          "++key=value | ~key | group=option ...]");
  cmd->add_option("--cfg", args->cfg, "Print the composed config and exit ('job')");
  cmd->add_flag("--resolve", args->resolve, "With --cfg job: resolve ${...} interpolations before printing");
  cmd->add_flag("-m,--multirun", args->multirun, "Expand sweeps (a=1,2 b=choice(x,y) c=range(0,4,2)) into one run per combination");
  cmd->add_flag("--print-runs", args->print_runs, "With -m: validate every run, print its overrides (one line per run, shell-quoted) and exit");
  cmd->add_option("--config-dir", args->config_dir, "Config directory (default: $DUALIGN_CONFIG_DIR or ./configs)");
  cmd->add_option("--config-name", args->config_name, "Primary config file name without .yaml")->capture_default_str();
  cmd->add_option("overrides", args->overrides, "Config overrides");
  std::string methods_help = "\nMethods (method=NAME; configs/method/NAME.yaml):\n";
  for (const auto& m : methods::all_methods())
    methods_help += fmt::format("  {:<12} {}{}\n", m.name, m.summary, m.traits.frozen_reference ? " [frozen reference]" : "");
  cmd->footer(methods_help);
  cmd->callback([args] { set_exit_code(train(*args)); });
}

const bool registered = register_command(add_train_command);

}  // namespace
}  // namespace dualign::app
