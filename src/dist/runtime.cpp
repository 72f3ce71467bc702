#include "dist/runtime.h"

#include <mpi.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <vector>

#include <torch/cuda.h>

#include "dist/launch_env.h"
#include "util/error.h"
#include "util/log.h"

namespace dualign::dist {
namespace {

World g_world;
bool g_initialized = false;
bool g_we_started_mpi = false;

std::string hostname() {
  char buf[256] = {0};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

bool mpi_active() {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  return init && !fin;
}

// One fixed-size record per rank, gathered on rank 0 for the start-up table and the device check.
struct RankRecord {
  int rank, local_rank, local_size, device_index;
  char host[64];
};

void print_table_and_check_devices(const World& w) {
  RankRecord mine{w.rank, w.local_rank, w.local_size, w.device_index, {}};
  std::snprintf(mine.host, sizeof mine.host, "%s", w.host.c_str());
  std::vector<RankRecord> all(w.rank == 0 ? w.size : 0);
  MPI_Gather(&mine, sizeof mine, MPI_BYTE, all.data(), sizeof mine, MPI_BYTE, 0, MPI_COMM_WORLD);
  std::string problem;
  if (w.rank == 0) {
    std::string table = fmt::format("world of {} rank(s)\n  {:>5} {:>24} {:>10} {:>8}", w.size, "rank", "host",
                                    "local", "device");
    for (const auto& r : all) {
      table += fmt::format("\n  {:>5} {:>24} {:>7}/{:<2} {:>8}", r.rank, r.host, r.local_rank, r.local_size,
                           r.device_index < 0 ? std::string("cpu") : fmt::format("cuda:{}", r.device_index));
      for (const auto& q : all)  // two ranks on one host must not share a GPU (NCCL would hang)
        if (q.rank < r.rank && r.device_index >= 0 && q.device_index == r.device_index &&
            std::strcmp(q.host, r.host) == 0 && problem.empty())
          problem = fmt::format("ranks {} and {} on host {} both chose cuda:{}; start at most one rank per "
                                "visible GPU (check CUDA_VISIBLE_DEVICES / --gpus-per-task)",
                                q.rank, r.rank, r.host, r.device_index);
    }
    log::info("{}", table);
  }
  int bad = problem.empty() ? 0 : 1;
  MPI_Bcast(&bad, 1, MPI_INT, 0, MPI_COMM_WORLD);
  if (bad) {
    if (w.rank == 0) abort_all(problem);
    MPI_Barrier(MPI_COMM_WORLD);  // rank 0 aborts the job
  }
}

}  // namespace

double comm_timeout_seconds() {
  const char* env = std::getenv("DUALIGN_COMM_TIMEOUT_S");
  if (!env || !*env) return 600.0;
  char* end = nullptr;
  double v = std::strtod(env, &end);
  if (end == env || v <= 0) fail("DUALIGN_COMM_TIMEOUT_S='{}': expected a positive number of seconds", env);
  return v;
}

const World& init(int& argc, char**& argv) {
  if (g_initialized) return g_world;
  int already = 0;
  MPI_Initialized(&already);
  int provided = 0;
  if (!already) {
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    g_we_started_mpi = true;
  } else {
    MPI_Query_thread(&provided);
  }
  World w;
  MPI_Comm_rank(MPI_COMM_WORLD, &w.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &w.size);
  MPI_Comm local;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, w.rank, MPI_INFO_NULL, &local);
  MPI_Comm_rank(local, &w.local_rank);
  MPI_Comm_size(local, &w.local_size);
  MPI_Comm_free(&local);
  w.host = hostname();
  // Slurm with --gpus-per-task narrows CUDA_VISIBLE_DEVICES, so every rank may see one device: modulo.
  int devices = torch::cuda::is_available() ? static_cast<int>(torch::cuda::device_count()) : 0;
  w.cuda = devices > 0;
  w.device_index = w.cuda ? w.local_rank % devices : -1;
  g_world = w;
  g_initialized = true;
  log::init(w.rank);

  if (provided < MPI_THREAD_MULTIPLE)
    abort_all(fmt::format("MPI provides thread level {} but dualign needs MPI_THREAD_MULTIPLE ({}): the "
                          "communicator runs collectives on its own thread",
                          provided, static_cast<int>(MPI_THREAD_MULTIPLE)));
  // A launcher that meant another world (torchrun, srun without PMIx, another MPI's mpiexec): stop, say how to launch.
  if (std::string problem = launch_problem(w.rank, w.size, [](const char* name) { return std::getenv(name); });
      !problem.empty())
    abort_all(problem);
  print_table_and_check_devices(w);
  return g_world;
}

const World& world() { return g_world; }
bool initialized() { return g_initialized; }

void finalize() {
  if (g_we_started_mpi && mpi_active()) MPI_Finalize();
  g_initialized = false;
}

void abort_all(const std::string& reason, int code) {
  log::error("fatal: {}", reason);
  std::fflush(stdout);
  std::fflush(stderr);
  if (mpi_active()) MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

int run_guarded(const std::function<int()>& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    abort_all(e.what());
  } catch (...) {
    abort_all("unknown exception (not derived from std::exception)");
  }
}

}  // namespace dualign::dist
