#include "train/checkpointing.h"

#include <signal.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>

#include "ckpt/checkpoint.h"
#include "ckpt/state.h"
#include "ckpt/store.h"
#include "config/config.h"
#include "dist/comm.h"
#include "models/ema.h"
#include "train/optimizer.h"
#include "train/run_dir.h"
#include "train/settings.h"
#include "util/error.h"
#include "util/log.h"

namespace dualign::train {
namespace {

// Fault injection for the resume tests: DUALIGN_SIGKILL_AFTER_CHECKPOINT=<step> makes every rank SIGKILL
// itself right after the checkpoint of that step is complete, like a preempted job.
void maybe_inject_kill(int64_t step) {
  const char* v = std::getenv("DUALIGN_SIGKILL_AFTER_CHECKPOINT");
  if (v && std::atoll(v) == step) {
    log::warn("fault injection: SIGKILL after the checkpoint of step {}", step);
    raise(SIGKILL);
  }
}

}  // namespace

Checkpointer::Checkpointer(const TrainSettings& s, const config::Config& cfg, dist::Comm& comm)
    : s_(s), cfg_(cfg), comm_(comm), dir_(s.run_dir + "/ckpt") {}

Checkpointer::~Checkpointer() = default;

void Checkpointer::maybe_save(int64_t step, bool last, const TrainState& state) {
  bool due = s_.checkpoint_every > 0 && step % s_.checkpoint_every == 0;
  if (!due && !(last && s_.checkpoint_every >= 0)) return;
  save(step, state);
  maybe_inject_kill(step);
}

void Checkpointer::save(int64_t step, const TrainState& state) {
  if (state.optimizer.sharded())
    fail("checkpointing with dist.zero_stage={} is not supported yet (sharded optimizer state); use dist=ddp or "
         "set train.checkpoint_every=-1",
         s_.zero_stage);
  if (comm_.rank() == 0) {
    ckpt::CheckpointStore store(dir_, s_.keep_checkpoints);
    auto path = store.save(step, [&](ckpt::CheckpointWriter& w) {
      w.put_group("model", ckpt::module_state(state.model));
      w.put_group("optimizer", state.optimizer.state(state.model));
      if (state.ema) {
        w.put_group("ema", state.ema->state());
        w.set_attr("ema_updates", state.ema->num_updates());
      }
      w.set_attr("world_size", static_cast<int64_t>(comm_.size()));
      w.set_attr("git_sha", git_sha());
      w.put_text("config_yaml", cfg_.to_yaml(/*resolve=*/true));
    });
    log::info("checkpoint: {}", path);
  }
  comm_.barrier();  // nobody moves on (or gets killed) before the file is complete
}

int64_t Checkpointer::restore(const TrainState& state) {
  std::string source;
  if (s_.resume == "auto") {
    auto latest = ckpt::CheckpointStore(dir_, s_.keep_checkpoints).latest();
    if (!latest) return 0;
    source = *latest;
  } else if (s_.resume == "none" || s_.resume.empty()) {
    return 0;
  } else {
    source = ckpt::CheckpointStore::resolve(s_.resume);
  }
  if (state.optimizer.sharded())
    fail("run.resume with dist.zero_stage={} is not supported yet; resume with dist=ddp", s_.zero_stage);
  ckpt::CheckpointReader r(source);
  const int64_t step = r.attr_int("step");
  r.load_into("model", ckpt::module_state(state.model));
  state.optimizer.load_state(state.model, r.group("optimizer"), source);
  if (state.ema) {
    if (!r.has_group("ema")) fail("checkpoint {} has no 'ema' group but train.ema_decay > 0", source);
    state.ema->load_state(r.group("ema"), r.attr_int("ema_updates"));
  }
  log::info("resumed from {} at step {} (saved by {} ranks, now {})", source, step, r.attr_int("world_size"),
            comm_.size());
  return step;
}

}  // namespace dualign::train
