// Process-level distributed runtime: MPI start/stop, who am I (rank, node-local rank, device), and how a
// failure on one rank brings every rank down promptly instead of leaving the others hanging.
#pragma once
#include <functional>
#include <string>

namespace dualign::dist {

struct World {
  int rank = 0, size = 1;              // MPI_COMM_WORLD
  int local_rank = 0, local_size = 1;  // ranks sharing this node (MPI_Comm_split_type SHARED)
  std::string host;
  bool cuda = false;      // a CUDA device is visible to this rank
  int device_index = -1;  // local_rank % visible CUDA devices, -1 without CUDA
};

// MPI_Init_thread(MULTIPLE) (or reuse an MPI that is already initialised); works without mpirun as a world
// of 1. Computes the node-local rank and the CUDA device, checks SLURM_NTASKS == world size under Slurm
// (set DUALIGN_IGNORE_SLURM_NTASKS=1 to skip), sets log::init(rank) and prints the rank table on rank 0.
const World& init(int& argc, char**& argv);
const World& world();  // the result of init(); a world of 1 before init
bool initialized();

// MPI_Finalize if init() started MPI. Destroy every Comm before calling this.
void finalize();

// Logs `reason` on this rank (error level, every rank prints), then MPI_Abort so every rank exits promptly
// with `code`. Without MPI it just exits.
[[noreturn]] void abort_all(const std::string& reason, int code = 1);

// Runs body; any exception is logged with its message and turns into abort_all. Returns body's exit code.
int run_guarded(const std::function<int()>& body);

// Seconds a collective may take before the watchdog aborts the job (env DUALIGN_COMM_TIMEOUT_S, default 600).
double comm_timeout_seconds();

}  // namespace dualign::dist
