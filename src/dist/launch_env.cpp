#include "dist/launch_env.h"

#include <fmt/format.h>

#include <cstdlib>
#include <optional>

namespace dualign::dist {
namespace {

// The integer value of a variable; nullopt when unset, empty or not a number.
std::optional<long> int_var(const EnvLookup& env, const char* name) {
  const char* v = env(name);
  if (!v || !*v) return std::nullopt;
  char* end = nullptr;
  long n = std::strtol(v, &end, 10);
  if (*end != '\0') return std::nullopt;
  return n;
}

bool set(const EnvLookup& env, const char* name) {
  const char* v = env(name);
  return v && *v;
}

constexpr const char* kHowToLaunch =
    "dualign's ranks are MPI processes: launch them with `mpirun -np N dualign ...` "
    "(launch/launchers/local.sh -np N), `srun --mpi=pmix dualign ...` (launch/launchers/slurm.sbatch) or "
    "launch/launchers/multinode.sh";

}  // namespace

std::string launch_problem(int mpi_rank, int mpi_size, const EnvLookup& env) {
  // torchrun / torch.distributed.launch / accelerate: they set WORLD_SIZE and RANK for a TCP rendezvous that
  // dualign does not use; each process started that way is an MPI world of 1.
  const auto world_size = int_var(env, "WORLD_SIZE");
  const auto rank = int_var(env, "RANK");
  const bool torch_launcher = set(env, "TORCHELASTIC_RUN_ID") || set(env, "MASTER_ADDR") || set(env, "LOCAL_RANK") ||
                              set(env, "ACCELERATE_MIXED_PRECISION") || world_size || rank;
  if (torch_launcher && ((world_size && *world_size != mpi_size) || (rank && *rank != mpi_rank)))
    return fmt::format(
        "this process was started by torchrun/accelerate (WORLD_SIZE={}, RANK={}, LOCAL_RANK={}, MASTER_ADDR={}) but "
        "the MPI world has {} rank(s) and this is rank {}: every process would train alone. {}; do not use torchrun "
        "or accelerate launch (unset WORLD_SIZE and RANK if they are left over in your shell)",
        env("WORLD_SIZE") ? env("WORLD_SIZE") : "unset", env("RANK") ? env("RANK") : "unset",
        env("LOCAL_RANK") ? env("LOCAL_RANK") : "unset", env("MASTER_ADDR") ? env("MASTER_ADDR") : "unset", mpi_size,
        mpi_rank, kHowToLaunch);

  // An MPI launcher that started a world MPI does not see: a binary built against another MPI (each process
  // initialises as a singleton).
  const auto ompi_size = int_var(env, "OMPI_COMM_WORLD_SIZE");
  if (ompi_size && *ompi_size != mpi_size)
    return fmt::format("Open MPI's mpirun started {} rank(s) (OMPI_COMM_WORLD_SIZE) but this process sees an MPI world "
                       "of {}: the binary's MPI library is not the one mpirun belongs to. Use the mpirun of the MPI "
                       "dualign was built with (dualign --version prints it)",
                       *ompi_size, mpi_size);
  const auto pmi_size = int_var(env, "PMI_SIZE");
  if (pmi_size && *pmi_size != mpi_size && !ompi_size)
    return fmt::format("the launcher started {} rank(s) (PMI_SIZE, set by MPICH/Intel MPI mpiexec or srun --mpi=pmi2) "
                       "but this process sees an MPI world of {}: the launcher and dualign's MPI library (dualign "
                       "--version) do not match. {}",
                       *pmi_size, mpi_size, kHowToLaunch);

  // Slurm: SLURM_NTASKS is the step's (or the allocation's) task count. A world of 1 under srun means srun did
  // not wire the tasks up (no --mpi=pmix, or Slurm built without PMIx); outside srun it means dualign was run
  // directly in a batch script.
  const auto ntasks = int_var(env, "SLURM_NTASKS");
  const char* ignore = env("DUALIGN_IGNORE_SLURM_NTASKS");
  const bool ignored = ignore && std::string(ignore) == "1";
  if (ntasks && *ntasks != mpi_size && !ignored && !(ompi_size && *ompi_size == mpi_size)) {
    const char* mpi_type = env("SLURM_MPI_TYPE");
    std::string why = !set(env, "SLURM_STEP_ID") && !set(env, "SLURM_STEPID")
                          ? "dualign was started directly in the allocation, not by srun"
                      : mpi_type && std::string(mpi_type) != "pmix" && std::string(mpi_type).rfind("pmix", 0) != 0
                          ? fmt::format("srun used the MPI plugin '{}' (SLURM_MPI_TYPE), not PMIx", mpi_type)
                          : "the tasks did not join one MPI job (srun without a working --mpi=pmix)";
    return fmt::format("MPI world size is {} but SLURM_NTASKS={}: {}. Launch with `srun --mpi=pmix` (see "
                       "launch/launchers/slurm.sbatch; `srun --mpi=list` shows the plugins), or set "
                       "DUALIGN_IGNORE_SLURM_NTASKS=1 if a smaller world is intended",
                       mpi_size, *ntasks, why);
  }
  return "";
}

}  // namespace dualign::dist
