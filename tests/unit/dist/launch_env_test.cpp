// Launch-environment checks: each launcher's variables against the MPI world, and the message names the
// variable and how to launch.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "dist/launch_env.h"

using dualign::dist::launch_problem;

namespace {

std::string problem(int rank, int size, std::map<std::string, std::string> vars) {
  return launch_problem(rank, size, [&](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  });
}

void expect_has(const std::string& msg, std::initializer_list<const char*> needles) {
  EXPECT_FALSE(msg.empty());
  for (const char* n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "missing '" << n << "' in: " << msg;
}

}  // namespace

TEST(LaunchEnv, PlainRunsAndMatchingLaunchersAreFine) {
  EXPECT_EQ(problem(0, 1, {}), "");
  EXPECT_EQ(problem(1, 2, {{"OMPI_COMM_WORLD_SIZE", "2"}}), "");
  EXPECT_EQ(problem(3, 4, {{"SLURM_NTASKS", "4"}, {"SLURM_STEP_ID", "0"}, {"SLURM_MPI_TYPE", "pmix"}}), "");
  EXPECT_EQ(problem(0, 2, {{"WORLD_SIZE", "2"}, {"RANK", "0"}}), "");  // consistent, e.g. exported on purpose
  // mpirun inside a larger allocation: mpirun's own world decides
  EXPECT_EQ(problem(0, 2, {{"SLURM_NTASKS", "8"}, {"OMPI_COMM_WORLD_SIZE", "2"}}), "");
  EXPECT_EQ(problem(0, 1, {{"SLURM_NTASKS", "8"}, {"DUALIGN_IGNORE_SLURM_NTASKS", "1"}}), "");
}

TEST(LaunchEnv, TorchrunWorldIsRefused) {
  auto msg = problem(0, 1, {{"WORLD_SIZE", "4"}, {"RANK", "2"}, {"LOCAL_RANK", "2"}, {"MASTER_ADDR", "127.0.0.1"},
                            {"TORCHELASTIC_RUN_ID", "x"}});
  expect_has(msg, {"torchrun", "WORLD_SIZE=4", "RANK=2", "mpirun -np N", "srun --mpi=pmix"});
  expect_has(problem(0, 1, {{"RANK", "1"}}), {"RANK=1"});
}

TEST(LaunchEnv, SlurmWithoutPmixNamesThePlugin) {
  expect_has(problem(0, 1, {{"SLURM_NTASKS", "4"}, {"SLURM_STEP_ID", "0"}, {"SLURM_MPI_TYPE", "none"}}),
             {"SLURM_NTASKS=4", "plugin 'none'", "--mpi=pmix"});
  expect_has(problem(0, 1, {{"SLURM_NTASKS", "4"}, {"SLURM_STEP_ID", "0"}}), {"did not join", "--mpi=pmix"});
  expect_has(problem(0, 1, {{"SLURM_NTASKS", "4"}}), {"not by srun"});
}

TEST(LaunchEnv, ForeignMpiLauncherIsRefused) {
  expect_has(problem(0, 1, {{"OMPI_COMM_WORLD_SIZE", "2"}}), {"OMPI_COMM_WORLD_SIZE", "world of 1"});
  expect_has(problem(0, 1, {{"PMI_SIZE", "3"}}), {"PMI_SIZE", "MPICH"});
}
