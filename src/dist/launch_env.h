// Does the MPI world agree with the launcher that started this process? Every launcher announces the world it
// meant to start in the environment; when MPI sees another one (typically a world of 1 per process: torchrun,
// `srun` without PMIx, the mpiexec of another MPI), every rank would silently train alone. init() checks this
// before anything else and stops the job with a message that says how to launch.
#pragma once
#include <functional>
#include <string>

namespace dualign::dist {

using EnvLookup = std::function<const char*(const char*)>;  // getenv, or a table in tests

// "" when the launch is consistent; otherwise what is wrong and how to launch instead. Checked, in order:
//   torchrun / accelerate (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR): dualign ranks are MPI processes
//   Open MPI's mpirun (OMPI_COMM_WORLD_SIZE), MPICH / Intel MPI hydra (PMI_SIZE): the world they started
//   Slurm (SLURM_NTASKS under srun or an allocation): unless DUALIGN_IGNORE_SLURM_NTASKS=1 or mpirun's own
//   world matches (mpirun inside an allocation starts the number of ranks it was asked for)
std::string launch_problem(int mpi_rank, int mpi_size, const EnvLookup& env);

}  // namespace dualign::dist
