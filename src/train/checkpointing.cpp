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
#include "train/nonfinite.h"
#include "train/optimizer.h"
#include "train/run_dir.h"
#include "train/settings.h"
#include "train/zero_reshard.h"
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

// A cheap fingerprint of this rank's weights: the sum of their bit patterns (any changed bit changes it) and of
// their values. Every rank logs it with each checkpoint; replicas of one step must print the same line.
std::string weights_fingerprint(const torch::nn::Module& model) {
  torch::NoGradGuard no_grad;
  int64_t bits = 0;
  double values = 0;
  for (const auto& p : model.parameters()) {
    const auto flat = p.detach().contiguous().reshape({-1});
    const auto int_type = p.element_size() == 8 ? torch::kInt64 : p.element_size() == 4 ? torch::kInt32 : torch::kInt16;
    const auto as_int = flat.view(int_type);
    bits += as_int.sum(torch::kInt64).item<int64_t>();
    values += flat.sum(torch::kFloat64).item<double>();
  }
  return fmt::format("{:016x} / {:.17g}", static_cast<uint64_t>(bits), values);
}

std::string dir_of(const std::string& checkpoint) {
  return std::filesystem::path(checkpoint).parent_path().string();
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
  log::info("step {}: weights fingerprint {}", step, weights_fingerprint(state.model));
  ckpt::CheckpointStore store(dir_, s_.keep_checkpoints);
  if (state.optimizer.sharded()) {  // every rank's shard first, so `latest` only names complete steps
    store.save_shard(step, comm_.rank(), comm_.size(),
                     [&](ckpt::CheckpointWriter& w) { w.put_group("optimizer_shard", state.optimizer.shard_state()); });
    comm_.barrier();
  }
  if (comm_.rank() == 0) {
    auto path = store.save(step, [&](ckpt::CheckpointWriter& w) {
      w.put_group("model", ckpt::module_state(state.model));
      if (!state.optimizer.sharded()) w.put_group("optimizer", state.optimizer.state(state.model));
      if (state.ema) {
        w.put_group("ema", state.ema->state());
        w.set_attr("ema_updates", state.ema->num_updates());
      }
      if (!state.method_state.empty()) w.put_group("method", state.method_state);
      w.put_group("nonfinite", state.nonfinite.state());
      if (state.optimizer.scaler().enabled()) w.put_group("loss_scaler", state.optimizer.scaler_state());
      w.set_attr("world_size", static_cast<int64_t>(comm_.size()));
      w.set_attr("optimizer", state.optimizer.name());
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
  ckpt::CheckpointReader r(source);
  const int64_t step = r.attr_int("step");
  r.load_into("model", ckpt::module_state(state.model));
  // Checkpoints from before train.optimizer have no attribute: they are AdamW's.
  const std::string saved_optimizer = r.has_attr("optimizer") ? r.attr_string("optimizer") : "adamw";
  if (saved_optimizer != state.optimizer.name())
    fail("checkpoint {} holds {} optimizer state but this run has train.optimizer={}: resume with the optimizer it "
         "was written with", source, saved_optimizer, state.optimizer.name());
  if (state.optimizer.sharded() == r.has_group("optimizer"))
    fail("checkpoint {} holds {} optimizer state but this run uses {}: resume with the dist setting it was written "
         "with (dist=ddp or dist=zero1/zero2; ZeRO-1 and ZeRO-2 shards are interchangeable)",
         source, r.has_group("optimizer") ? "unsharded (DDP)" : "ZeRO-sharded",
         state.optimizer.sharded() ? "ZeRO (dist.zero_stage > 0)" : "DDP (dist.zero_stage=0)");
  if (state.optimizer.sharded() && !state.optimizer.reshardable()) {
    const int saved_world = static_cast<int>(r.attr_int("world_size"));
    if (saved_world != comm_.size())
      fail("checkpoint {} was written by {} ranks; ZeRO Adafactor state (whole parameters per rank) resumes only at "
           "that world size, this run has {}", source, saved_world, comm_.size());
    const auto shard = ckpt::CheckpointStore(dir_of(source)).shard_path(step, comm_.rank(), comm_.size());
    if (!std::filesystem::exists(shard))
      fail("checkpoint {}: its ZeRO optimizer shard {} is missing (every rank writes one before the main file)",
           source, shard);
    state.optimizer.load_shard_state(ckpt::CheckpointReader(shard).group("optimizer_shard"), shard);
  } else if (state.optimizer.sharded()) {
    const int saved_world = static_cast<int>(r.attr_int("world_size"));
    int64_t num_params = 0;
    for (const auto& p : state.model.parameters()) num_params += p.numel();
    ZeroShard shard = read_zero_shard(source, step, saved_world, num_params, comm_.rank(), comm_.size());
    state.optimizer.load_shard_state(shard.tensors, shard.source);
    // Re-sharded (another world size): write this world's shards of the same step beside the saved ones, so
    // that the checkpoint is complete for the world that now runs it. Only in this run's own directory.
    std::error_code ec;  // false when this run's ckpt dir does not exist yet (run.resume=<another run's file>)
    if (shard.resharded && std::filesystem::equivalent(std::filesystem::path(source).parent_path(), dir_, ec)) {
      ckpt::CheckpointStore(dir_, s_.keep_checkpoints)
          .save_shard(step, comm_.rank(), comm_.size(),
                      [&](ckpt::CheckpointWriter& w) { w.put_group("optimizer_shard", state.optimizer.shard_state()); });
      comm_.barrier();
    }
    if (shard.resharded)
      log::info("ZeRO optimizer state re-sharded from {} to {} ranks (shard of rank {}: {})", saved_world,
                comm_.size(), comm_.rank(), shard.source);
  } else {
    state.optimizer.load_state(state.model, r.group("optimizer"), source);
  }
  if (state.ema) {
    if (!r.has_group("ema")) fail("checkpoint {} has no 'ema' group but train.ema_decay > 0", source);
    state.ema->load_state(r.group("ema"), r.attr_int("ema_updates"));
  }
  if (!state.method_state.empty()) {
    if (!r.has_group("method")) fail("checkpoint {} has no 'method' group but the method keeps dual variables", source);
    r.load_into("method", state.method_state);
  }
  // Checkpoints from before mixed precision have neither group: counters start at zero, the scale at its init.
  if (r.has_group("nonfinite")) state.nonfinite.load_state(r.group("nonfinite"), source);
  if (state.optimizer.scaler().enabled()) {
    if (r.has_group("loss_scaler"))
      state.optimizer.load_scaler_state(r.group("loss_scaler"), source);
    else
      log::warn("checkpoint {} has no fp16 loss scale (written by an fp32/bf16 run): starting from train.loss_scale.init",
                source);
  }
  log::info("resumed from {} at step {} (saved by {} ranks, now {})", source, step, r.attr_int("world_size"),
            comm_.size());
  return step;
}

}  // namespace dualign::train
