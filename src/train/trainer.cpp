#include "train/trainer.h"

#include <torch/torch.h>

#include <map>

#include "config/config.h"
#include "diffusion/schedule.h"
#include "diffusion/schedule_config.h"
#include "dist/comm.h"
#include "dist/device_memory.h"
#include "dist/runtime.h"
#include "dist/stats.h"
#include "methods/method.h"
#include "models/autocast.h"
#include "models/ema.h"
#include "models/score_model.h"
#include "train/checkpointing.h"
#include "train/data_source.h"
#include "train/evaluate.h"
#include "train/graceful_stop.h"
#include "train/lr_schedule.h"
#include "train/nonfinite.h"
#include "train/optimizer.h"
#include "train/throughput.h"
#include "train/validation.h"
#include "train/run_dir.h"
#include "train/settings.h"
#include "util/command_line.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/progress.h"
#include "util/seed.h"

namespace dualign::train {
namespace {

torch::Device pick_device(const dist::World& world) {
  return world.cuda ? torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(world.device_index))
                    : torch::Device(torch::kCPU);
}

void set_threads(const TrainSettings& s, const dist::World& world) {
  int threads = s.threads;
  if (threads <= 0) threads = std::max(1u, std::thread::hardware_concurrency() / std::max(1, world.local_size));
  at::set_num_threads(threads);
  at::set_num_interop_threads(1);
}

// train.tf32: TF32 tensor cores for fp32 matmuls and convolutions on CUDA (PyTorch's allow_tf32 switches).
void set_tf32(bool on) {
  at::globalContext().setAllowTF32CuBLAS(on);
  at::globalContext().setAllowTF32CuDNN(on);
}

}  // namespace

int run_training(const config::Config& cfg, const dist::World& world) {
  // ---- setup: settings, device, communicator, run directory ------------------------------------------------
  const TrainSettings s = read_settings(cfg);
  set_threads(s, world);
  set_tf32(s.tf32);
  const torch::Device device = pick_device(world);
  if (device.is_cpu()) dist::install_cpu_memory_meter();  // train/peak_tensor_mb, as CUDA's allocator counts it
  auto comm = dist::make_comm(world, device);
  const bool rank0 = world.rank == 0;
  if (rank0) write_run_metadata(s.run_dir, cfg, {world.size, command_line()});
  comm->barrier();  // the run dir exists before any rank writes into it
  if (s.per_rank_logs) log::open_file(s.run_dir + "/logs/rank" + std::to_string(world.rank) + ".log");
  MetricsWriter metrics(s.run_dir, rank0);
  log::info("run dir: {}", s.run_dir);

  // ---- model, method, data, optimizer -----------------------------------------------------------------------
  diffusion::NoiseSchedule schedule(diffusion::read_schedule(cfg.section("diffusion")));
  const uint64_t init_seed = derive_seed(s.seed, "init");
  torch::manual_seed(init_seed);
  auto policy = models::build_score_model(cfg.section("model"), device);
  log::info("model: {} with {} parameters", policy->describe(), policy->num_parameters());
  auto build_reference = [&] {  // the policy's starting point again (same init seed, same model.init_from)
    torch::manual_seed(init_seed);
    return models::build_score_model(cfg.section("model"), device);
  };
  auto method = methods::make_method(cfg.section("method"), {schedule, device, build_reference, comm.get(), policy});
  ShardSpec shard{world.rank, world.size, s.global_micro_batch(world.size), s.grad_accum, s.seed, device};
  auto data = make_data_source(cfg.section("data"), shard);
  DistributedOptimizer optimizer(*comm, policy->parameters(), s);  // starts from rank 0's weights (fp32 masters)
  const auto autocast_dtype = models::autocast_dtype(s.precision, "train.precision");
  NonFinitePolicy nonfinite(s);
  std::unique_ptr<models::EMA> ema;
  if (s.ema_decay > 0) ema = std::make_unique<models::EMA>(policy->module(), s.ema_decay);
  Checkpointer checkpointer(s, cfg, *comm);
  const TrainState state{policy->module(), optimizer, ema.get(), method->state(), nonfinite};
  const int64_t start_step = checkpointer.restore(state);
  ValidationSamples validation(s, schedule, rank0);
  log::info("method {} | global batch {} = {} ranks x {} x {} accum | {} steps", method->name(), s.global_batch,
            world.size, shard.local_size(), s.grad_accum, s.steps);

  // ---- the loop -----------------------------------------------------------------------------------------------
  Progress progress("train", s.steps, rank0 && s.progress);
  dist::StatsReducer stats;
  double last_loss = 0;
  Throughput throughput(s.global_batch, start_step);
  GracefulStop stop;  // SIGINT/SIGTERM/SIGUSR1: checkpoint after the same step on every rank, then exit 75
  for (int64_t step = start_step; step < s.steps; ++step) {
    const double lr = learning_rate(step, s.steps, s.lr, s.warmup_steps, s.lr_schedule);
    optimizer.zero_grad();

    for (int64_t micro = 0; micro < s.grad_accum; ++micro) {
      data::Batch batch = data->next(step, micro);
      optimizer.begin_micro_step(/*last=*/micro + 1 == s.grad_accum);
      methods::LossOutput out;
      {
        models::AutocastScope autocast(device, autocast_dtype);  // train.precision: every forward of the loss
        out = method->loss(*policy, batch);
      }
      out.loss = inject_test_nan(step, world.rank, out.loss);    // test-only (DUALIGN_TEST_NAN_*); else a no-op
      optimizer.backward(out.loss / static_cast<double>(s.grad_accum));  // x the fp16 loss scale
      // On the device until the log step: the micro-step never waits for the GPU (dist/host_sync.h).
      stats.add("loss_sum", out.loss.detach().to(torch::kFloat64) * static_cast<double>(batch.local_size()));
      for (const auto& [name, value] : out.stats) stats.add(name, value);
    }
    // Gradient sync, unscaling, clipping, AdamW (or ZeRO); no rank updates when the global gradient is not finite.
    const StepReport update = optimizer.step(lr);
    nonfinite.after_step(step + 1, update);  // counts a skipped step, or stops the run (train.nonfinite)
    if (ema && update.applied) ema->update(policy->module());
    std::map<std::string, double> record = method->end_step(step + 1, *comm);  // dual updates, when due

    if ((step + 1) % s.log_every == 0 || step + 1 == s.steps) {
      auto reduced = stats.reduce(*comm);
      last_loss = dist::StatsReducer::ratio(reduced, "loss_sum", "count");
      record.insert({{"train/loss", last_loss}, {"train/lr", lr}, {"train/grad_norm", update.grad_norm},
                     {"train/skipped_steps", double(nonfinite.skipped_steps())},
                     {"train/loss_scale", update.loss_scale},
                     {"train/samples_per_s", throughput.samples_per_second(step + 1)},
                     {"train/peak_rss_mb", comm->all_reduce_double(peak_rss_mb(), dist::ReduceOp::max)},
                     {"train/peak_tensor_mb", comm->all_reduce_double(peak_tensor_mb(device), dist::ReduceOp::max)}});
      for (const auto& [name, value] : reduced)
        if (name.size() > 4 && name.ends_with("_sum") && name != "loss_sum")
          record["train/" + name.substr(0, name.size() - 4)] = value / dist::StatsReducer::get(reduced, "count");
      progress.update(step + 1, fmt::format("loss={:.4f}", last_loss));
    }
    if (!record.empty()) metrics.log(step + 1, record);
    const bool stopping = stop.agreed();  // a signal on any rank (non-blocking vote, one step late)
    checkpointer.maybe_save(step + 1, /*last=*/step + 1 == s.steps || stopping, state);
    if (stopping) {
      metrics.flush();
      return stop.exit_code(step + 1);
    }
    validation.maybe_write(step + 1, *policy, metrics);  // rank 0: PNG grid + TensorBoard image, when due
  }
  progress.finish(fmt::format("loss={:.4f}", last_loss));

  // ---- evaluation (with the EMA weights when enabled) -------------------------------------------------------------
  if (ema) ema->copy_to(policy->module());
  auto results = evaluate(cfg, s, *policy, schedule, *comm);
  metrics.log(s.steps, results);
  metrics.flush();
  for (const auto& [name, value] : results) log::info("{} = {:.6g}", name, value);
  return 0;
}

}  // namespace dualign::train
