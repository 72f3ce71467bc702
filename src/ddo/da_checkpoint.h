// Checkpoints of the DA loop in <run.dir>/ckpt (HDF5, written atomically by ckpt::CheckpointStore, like the
// trainer's): after each fit, ckpt-<k>.h5 holds the potential f_k (group "potential": parameters and output
// buffers), the records of q_1 .. q_{k−1} (group "da": "records" [k−1, kDaRecordFields]), the attributes
// da_next_k, fit_rmse, fit_target_std, world_size, and the composed config. Rank 0 writes; every rank reads.
// The checkpoint of step k is f_k itself, so the directory also keeps every iterate's potential.
#pragma once
#include <filesystem>
#include <optional>
#include <string>

#include "ddo/dual_averaging.h"
#include "ddo/potential.h"

namespace dualign::dist {
class Comm;
}

namespace dualign::ddo {

// Saves on rank 0 (collective: a barrier so no rank runs ahead of a half-written file). `config_yaml` is
// stored as text; `signature` (the settings that define the run) is checked on resume.
void save_da_checkpoint(const std::string& dir, Potential& f, const DaState& state, const std::string& config_yaml,
                        const std::string& signature, dist::Comm* comm, int keep_last);

// Loads `dir`'s latest checkpoint into f and returns its state, or nullopt when there is none. Fails (naming
// the file) when the checkpoint was made with a different signature.
std::optional<DaState> load_da_checkpoint(const std::string& dir, Potential& f, const std::string& signature);

// Loads the potential f_k of `dir`'s checkpoint ckpt-<k>.h5 into f (earlier iterates, for sampling them); false when
// that checkpoint is not there.
bool load_da_potential(const std::string& dir, int64_t k, Potential& f);

// DUALIGN_SIGKILL_AFTER_CHECKPOINT=<k>: every rank SIGKILLs itself right after checkpoint k (resume tests).
void maybe_inject_kill(int64_t k);

}  // namespace dualign::ddo
