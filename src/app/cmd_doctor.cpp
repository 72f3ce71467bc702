// `dualign doctor`: the self-check a cluster user runs first, one rank per GPU (launch/gpu_check.sh):
//   software   driver, CUDA runtime, NCCL and MPI versions, the visible GPUs
//   MPI        all-reduce correctness over the ranks (the control plane), a bandwidth sweep on CPU tensors
//   NCCL       all-reduce correctness over the GPUs and a bus-bandwidth sweep, 1 KiB .. 1 GiB
//   DPO step   a bf16 (autocast) Diffusion-DPO step of a tiny UNet on each rank's GPU against the same step in
//              fp32 on the CPU, and the host syncs inside that micro-step (dist/host_sync.h; reported)
//   memory     the step's peak GPU memory next to what `dualign plan` predicts for it
// Without a GPU it says so, runs the MPI checks and the DPO step on the CPU (bf16 autocast against fp32),
// skips the rest and exits 0. Any failed check makes every rank exit 1.
#include <ATen/autocast_mode.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "app/commands.h"
#include "config/config.h"
#include "diffusion/schedule.h"
#include "dist/comm.h"
#include "dist/comm_check.h"
#include "dist/device_memory.h"
#include "dist/gpu_stack.h"
#include "dist/host_sync.h"
#include "dist/memory_plan.h"
#include "dist/runtime.h"
#include "dualign/build_info.h"
#include "methods/method.h"
#include "models/score_model.h"
#include "util/error.h"

namespace dualign::app {
namespace {

struct DoctorArgs {
  int64_t min_bytes = 1 << 10;
  int64_t max_bytes_gpu = int64_t(1) << 30;
  int64_t max_bytes_cpu = 16 << 20;  // CPU ranks share a host's memory bandwidth: a short sweep is enough
  std::string json;                  // write the results here (rank 0)
};

// One line of the report; every rank holds the same list (values are reduced before they are added).
struct Check {
  std::string section, name, status, detail;  // status: ok | FAIL | skip | info
};

class Report {
 public:
  explicit Report(bool rank0) : rank0_(rank0) {}
  void section(const std::string& title) {
    if (rank0_) std::printf("== %s\n", title.c_str());
    section_ = title;
  }
  void add(const std::string& name, const std::string& status, const std::string& detail) {
    checks_.push_back({section_, name, status, detail});
    if (rank0_) std::printf("  [%s] %s%s%s\n", status.c_str(), name.c_str(), detail.empty() ? "" : ": ", detail.c_str());
    std::fflush(stdout);
  }
  void check(const std::string& name, bool ok, const std::string& detail) { add(name, ok ? "ok" : "FAIL", detail); }
  void line(const std::string& text) {
    if (rank0_) std::printf("  %s\n", text.c_str());
  }
  int count(const std::string& status) const {
    int n = 0;
    for (const auto& c : checks_) n += c.status == status;
    return n;
  }
  void write_json(const std::string& path, const dist::GpuStack& stack, int world) const {
    if (!rank0_ || path.empty()) return;
    nlohmann::json j;
    j["gpus"] = stack.gpus;
    j["world_size"] = world;
    j["driver"] = stack.driver;
    j["cuda_runtime"] = stack.cuda_runtime;
    j["nccl"] = stack.nccl;
    j["mpi"] = stack.mpi;
    j["failed"] = count("FAIL");
    for (const auto& c : checks_)
      j["checks"].push_back({{"section", c.section}, {"name", c.name}, {"status", c.status}, {"detail", c.detail}});
    std::ofstream(path) << j.dump(1) << "\n";
  }

 private:
  bool rank0_;
  std::string section_;
  std::vector<Check> checks_;
};

std::string bytes_text(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB"};
  int u = 0;
  while (b >= 1024 && u < 3) b /= 1024, ++u;
  return fmt::format("{:.{}f} {}", b, b == std::floor(b) ? 0 : 1, units[u]);
}

void report_software(Report& r, const dist::GpuStack& s) {
  r.section("software");
  r.add("dualign", "info", fmt::format("{} ({}), LibTorch {}", DUALIGN_VERSION, DUALIGN_BUILD_TYPE, DUALIGN_TORCH_VERSION));
  r.add("driver", "info", s.driver.empty() ? "no NVIDIA kernel driver loaded" : s.driver);
  r.add("CUDA", "info",
        s.cuda_compiled ? fmt::format("compiled in (toolkit {}); runtime {}; the driver supports CUDA {}",
                                      DUALIGN_CUDA_TOOLKIT_VERSION, s.cuda_runtime,
                                      s.cuda_driver.empty() ? "- (no driver)" : s.cuda_driver)
                        : "not compiled in (CPU-only build)");
  r.add("NCCL", "info", s.nccl_compiled ? fmt::format("compiled against {}; library {}", DUALIGN_NCCL_VERSION, s.nccl)
                                        : "not compiled in");
  r.add("MPI", "info", s.mpi);
}

void check_collectives(Report& r, dist::Comm& comm, int64_t min_bytes, int64_t max_bytes) {
  for (const auto& c : dist::check_all_reduce(comm))
    r.check("all_reduce " + c.what, c.ok, fmt::format("max error {:.3g}", c.max_error));
  r.line(fmt::format("{:>10} {:>6} {:>12} {:>12} {:>12}", "bytes", "iters", "time_us", "algbw_GB/s", "busbw_GB/s"));
  for (const auto& p : dist::all_reduce_bandwidth(comm, min_bytes, max_bytes))
    r.line(fmt::format("{:>10} {:>6} {:>12.1f} {:>12.3f} {:>12.3f}", bytes_text(double(p.bytes)), p.iterations,
                       p.seconds * 1e6, p.algbw_gbps, p.busbw_gbps));
  if (comm.size() == 1) r.line("(one rank: the bus bandwidth of an all-reduce over one rank is 0 by definition)");
}

// ---- the DPO step ----------------------------------------------------------------------------------------------

constexpr int64_t kPairs = 2;
constexpr double kBeta = 10;

config::Config doctor_config(bool bf16_reference) {
  // configs/model/unet_tiny.yaml, inline so that the doctor needs no config directory.
  const std::string yaml = fmt::format(R"(
model: {{kind: unet, sample_size: 16, in_channels: 4, out_channels: 4,
        down_block_types: [CrossAttnDownBlock2D, DownBlock2D], mid_block_type: UNetMidBlock2DCrossAttn,
        up_block_types: [UpBlock2D, CrossAttnUpBlock2D], block_out_channels: [32, 64], layers_per_block: 1,
        norm_num_groups: 8, cross_attention_dim: 32, attention_head_dim: 8}}
method: {{name: dpo, beta: {}, reference_dtype: {}}}
)", kBeta, bf16_reference ? "bfloat16" : "float32");
  config::Composed c;
  c.config = c.resolved = YAML::Load(yaml);
  return config::Config(std::move(c));
}

// Sets autocast for `device` to bf16 (or off) and restores the previous state.
class AutocastScope {
 public:
  AutocastScope(c10::DeviceType type, bool enabled)
      : type_(type), was_enabled_(at::autocast::is_autocast_enabled(type)), was_dtype_(at::autocast::get_autocast_dtype(type)) {
    at::autocast::set_autocast_enabled(type_, enabled);
    at::autocast::set_autocast_dtype(type_, at::kBFloat16);
  }
  ~AutocastScope() {
    at::autocast::set_autocast_enabled(type_, was_enabled_);
    at::autocast::set_autocast_dtype(type_, was_dtype_);
    at::autocast::clear_cache();
  }

 private:
  c10::DeviceType type_;
  bool was_enabled_;
  at::ScalarType was_dtype_;
};

struct StepResult {
  double loss = 0;
  torch::Tensor grad;       // every policy gradient, flattened, float32 on the CPU
  int64_t host_syncs = 0;   // in the second (warm) micro-step
  std::string sync_ops;     // which, if any
  int64_t peak_bytes = 0;   // allocator peak over loss, backward and an AdamW step (GPU only)
  int64_t params = 0;
};

// One Diffusion-DPO step with identical weights, pairs, t and ε on any device: fp32, or bf16 autocast with a
// bf16 frozen reference. The policy is moved off the reference (a seeded perturbation) so that the margin,
// and with it the loss, is not the trivial log 2.
StepResult dpo_step(const torch::Device& device, bool bf16) {
  const auto cfg = doctor_config(bf16);
  diffusion::NoiseSchedule schedule{diffusion::ScheduleConfig{}};
  auto build = [&] {
    torch::manual_seed(7);
    return models::build_score_model(cfg.section("model"), device);
  };
  auto policy = build();
  {
    torch::NoGradGuard no_grad;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
    for (auto& p : policy->parameters()) p.add_(at::normal(0.0, 0.02, p.sizes(), gen).to(device));
  }
  auto method = methods::make_method(cfg.section("method"), {schedule, device, build, nullptr});
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  data::Batch batch;
  batch.x = at::normal(0.0, 1.0, {kPairs, 4, 16, 16}, gen).to(device);
  batch.x_l = at::normal(0.0, 1.0, {kPairs, 4, 16, 16}, gen).to(device);
  batch.cond.text = at::normal(0.0, 1.0, {kPairs, 8, 32}, gen).to(device);
  batch.global_size = kPairs;
  batch.seed = 3;

  StepResult r;
  r.params = policy->num_parameters();
  torch::optim::AdamW opt(policy->parameters(), torch::optim::AdamWOptions(1e-4));
  AutocastScope autocast(device.type(), bf16);
  dist::reset_peak_device_memory(device);
  method->loss(*policy, batch).loss.backward();  // warm-up: first-use copies and allocations
  opt.zero_grad();
  methods::LossOutput out;
  {
    dist::HostSyncProbe probe;
    out = method->loss(*policy, batch);
    out.loss.backward();
    r.host_syncs = probe.count();
    r.sync_ops = probe.describe();
  }
  r.loss = out.loss.item<double>();
  std::vector<torch::Tensor> grads;
  for (const auto& p : policy->parameters()) grads.push_back(p.grad().detach().to(torch::kCPU, torch::kFloat32).flatten());
  r.grad = torch::cat(grads);
  opt.step();  // the optimizer state is part of the step's memory
  dist::synchronize_device(device);
  r.peak_bytes = dist::peak_device_memory(device);
  return r;
}

struct Comparison {
  double loss_diff = 0, grad_rel = 0;
};
Comparison compare(const StepResult& got, const StepResult& ref) {
  return {std::abs(got.loss - ref.loss), ((got.grad - ref.grad).norm() / ref.grad.norm()).item<double>()};
}

// Tolerances against the fp32 CPU step. fp32 on a GPU differs only in summation order (TF32 is switched off).
// bf16 autocast rounds every conv/linear input to 8 bits of mantissa (relative 2^-9 ≈ 2e-3 each); through the
// tiny UNet and β = 10 that moved the loss by 5.2e-3 and the gradient by 2.6e-2 (relative L2) on the CPU, so
// the limits leave about 4x room. A broken kernel or device is off by orders of magnitude.
constexpr double kFp32LossTol = 1e-4, kFp32GradTol = 1e-3, kBf16LossTol = 2e-2, kBf16GradTol = 1e-1;

void check_dpo_step(Report& r, dist::Comm& comm, const torch::Device& device, const StepResult& cpu_fp32) {
  auto report = [&](const std::string& name, const StepResult& got, double loss_tol, double grad_tol) {
    const auto c = compare(got, cpu_fp32);
    // Every rank checked its own device: report the worst.
    const auto worst = comm.all_reduce_doubles({c.loss_diff, c.grad_rel}, dist::ReduceOp::max);
    r.check(name, worst[0] <= loss_tol && worst[1] <= grad_tol,
            fmt::format("loss {:.6f} vs {:.6f}, |Δloss| {:.2e} (limit {:.0e}), gradient relative L2 {:.2e} "
                        "(limit {:.0e}){}", got.loss, cpu_fp32.loss, worst[0], loss_tol, worst[1], grad_tol,
                        comm.size() > 1 ? ", worst rank" : ""));
  };
  if (device.is_cuda()) {
    at::globalContext().setAllowTF32CuBLAS(false);
    at::globalContext().setAllowTF32CuDNN(false);
    report("gpu fp32 vs cpu fp32", dpo_step(device, false), kFp32LossTol, kFp32GradTol);
  }
  const auto bf16 = dpo_step(device, true);
  report(fmt::format("{} bf16 autocast vs cpu fp32", device.is_cuda() ? "gpu" : "cpu"), bf16, kBf16LossTol, kBf16GradTol);
  // The micro-step keeps its statistics on the device (methods::LossOutput, dist::StatsReducer): a host sync in
  // it would drain the GPU's queue every micro-step.
  const auto syncs = static_cast<int64_t>(comm.all_reduce_double(double(bf16.host_syncs), dist::ReduceOp::max));
  r.check("host syncs in the DPO micro-step (loss + backward)", syncs == 0,
          syncs == 0 ? "0" : fmt::format("{} (worst rank; this rank: {})", syncs, bf16.sync_ops));
  if (!device.is_cuda()) return;

  r.section("peak GPU memory of the bf16 DPO step vs dualign plan");
  dist::PlanInput in;
  in.model = dist::model_spec(std::to_string(bf16.params));
  in.frozen_reference = true;
  in.zero_stage = 0;
  in.precision = dist::Precision::bf16;
  in.world_size = 1;
  in.samples_per_gpu = 2 * kPairs;
  const auto plan = dist::plan_memory(in);
  const double measured = comm.all_reduce_double(double(bf16.peak_bytes), dist::ReduceOp::max);
  const double states = (plan.model_states_gb() + plan.reference_gb) * 1e9;
  r.add("measured (allocator peak, worst rank)", "info", bytes_text(measured));
  r.add("plan: model states + reference", "info",
        fmt::format("{} (params {}, grads {}, AdamW {}, reference {})", bytes_text(states),
                    bytes_text(plan.params_gb * 1e9), bytes_text(plan.grads_gb * 1e9), bytes_text(plan.optimizer_gb * 1e9),
                    bytes_text(plan.reference_gb * 1e9)));
  r.add("plan: + activations (no checkpointing)", "info",
        fmt::format("{}; the activation anchor scales SD-1.5 at 512 px by parameter count, so for this 16x16 "
                    "input it is only indicative (measure, then pass dualign plan --act-gb)",
                    bytes_text(states + plan.act_full_gb * 1e9)));
  r.add("plan: + workspace", "info",
        fmt::format("{} (CUDA context, NCCL buffers: outside the allocator's peak)",
                    bytes_text((plan.total_full_gb()) * 1e9)));
}

int run_doctor(const DoctorArgs& a) {
  int argc = 0;
  char** argv = nullptr;
  const dist::World& world = dist::init(argc, argv);
  int rc = dist::run_guarded([&] {
    torch::set_num_threads(1);
    Report r(world.rank == 0);
    const auto stack = dist::probe_gpu_stack();
    report_software(r, stack);

    r.section("GPUs");
    const torch::Device gpu = world.cuda ? torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(world.device_index))
                                         : torch::Device(torch::kCPU);
    if (world.cuda) {
      for (size_t i = 0; i < stack.gpus.size(); ++i) r.add(fmt::format("cuda:{}", i), "info", stack.gpus[i]);
    } else {
      r.add("GPU", "skip",
            fmt::format("NO GPU visible to this process ({}): skipping the NCCL all-reduce and bandwidth sweep, "
                        "the GPU DPO step and the GPU memory check; running the MPI and CPU checks",
                        stack.driver.empty() ? "no NVIDIA driver" : "driver " + stack.driver + ", but no usable device"));
    }

    {
      auto mpi = dist::make_comm(world, torch::kCPU);
      r.section(fmt::format("MPI all-reduce over {} rank(s), cpu tensors", world.size));
      check_collectives(r, *mpi, a.min_bytes, a.max_bytes_cpu);
    }
    std::unique_ptr<dist::Comm> nccl;
    if (world.cuda) {
      nccl = dist::make_comm(world, gpu);
      r.section(fmt::format("NCCL all-reduce over {} GPU(s), one rank each", world.size));
      check_collectives(r, *nccl, a.min_bytes, a.max_bytes_gpu);
    } else {
      r.section("NCCL all-reduce over the GPUs");
      r.add("NCCL", "skip", "no GPU");
    }

    r.section(fmt::format("Diffusion-DPO step, tiny UNet, {} pairs of 4x16x16, beta {}", kPairs, kBeta));
    auto control = dist::make_comm(world, torch::kCPU);  // reduces the per-rank results
    check_dpo_step(r, *control, gpu, dpo_step(torch::kCPU, false));
    if (!world.cuda) {
      r.section("peak GPU memory vs dualign plan");
      r.add("memory", "skip", "no GPU");
    }

    const int failed = r.count("FAIL");
    if (world.rank == 0)
      std::printf("result: %s (%d skipped)%s\n", failed ? fmt::format("{} check(s) FAILED", failed).c_str() : "all checks passed",
                  r.count("skip"), world.cuda ? "" : "; no GPU on this machine");
    r.write_json(a.json, stack, world.size);
    return failed ? 1 : 0;
  });
  dist::finalize();
  return rc;
}

void add_doctor_command(CLI::App& cli) {
  auto args = std::make_shared<DoctorArgs>();
  auto* cmd = cli.add_subcommand(
      "doctor", "Self-check of the GPU/MPI stack: versions, all-reduce correctness and bandwidth, a bf16 DPO step "
                "against the CPU, peak memory vs plan (run one rank per GPU: launch/gpu_check.sh)");
  cmd->add_option("--min-bytes", args->min_bytes, "smallest all-reduce of the bandwidth sweeps")->capture_default_str();
  cmd->add_option("--max-bytes", args->max_bytes_gpu, "largest NCCL all-reduce of the sweep")->capture_default_str();
  cmd->add_option("--max-bytes-cpu", args->max_bytes_cpu, "largest MPI all-reduce (cpu tensors) of the sweep")
      ->capture_default_str();
  cmd->add_option("--json", args->json, "also write the results to this file (rank 0)");
  cmd->callback([args] { set_exit_code(run_doctor(*args)); });
}

const bool registered = register_command(add_doctor_command);

}  // namespace
}  // namespace dualign::app
