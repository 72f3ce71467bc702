#include "dist/comm.h"

#include <fmt/ranges.h>

#include <torch/torch.h>

#include "dist/mpi_comm.h"
#include "dualign/build_info.h"
#include "util/error.h"
#if DUALIGN_HAVE_NCCL_BACKEND
#include "dist/nccl_comm.h"
#endif

namespace dualign::dist {

const char* to_string(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return "sum";
    case ReduceOp::avg: return "avg";
    case ReduceOp::max: return "max";
    case ReduceOp::min: return "min";
  }
  return "?";
}

void check_collective_tensor(const Comm& comm, const at::Tensor& t, const char* op, const char* arg) {
  DUALIGN_CHECK(t.defined(), "{}: tensor '{}' is undefined", op, arg);
  DUALIGN_CHECK(t.device() == comm.device(), "{}: tensor '{}' is on {} but the {} communicator works on {}", op,
                arg, t.device().str(), comm.backend(), comm.device().str());
  DUALIGN_CHECK(t.is_contiguous(), "{}: tensor '{}' (shape {}) must be contiguous", op, arg,
                fmt::format("{}", fmt::join(t.sizes(), "x")));
}

void check_reduce_scatter_v(const Comm& comm, const at::Tensor& out, const at::Tensor& in,
                            const std::vector<int64_t>& counts) {
  check_collective_tensor(comm, out, "reduce_scatter_v", "out");
  check_collective_tensor(comm, in, "reduce_scatter_v", "in");
  DUALIGN_CHECK(counts.size() == static_cast<size_t>(comm.size()), "reduce_scatter_v: {} counts for a world of {}",
                counts.size(), comm.size());
  int64_t total = 0;
  for (int64_t c : counts) {
    DUALIGN_CHECK(c >= 0, "reduce_scatter_v: negative count {}", c);
    total += c;
  }
  DUALIGN_CHECK(in.numel() == total && out.numel() == counts[static_cast<size_t>(comm.rank())] &&
                    out.scalar_type() == in.scalar_type(),
                "reduce_scatter_v: in has {} x {} and out {} x {}, expected {} and {} (counts {})", in.numel(),
                c10::toString(in.scalar_type()), out.numel(), c10::toString(out.scalar_type()), total,
                counts[static_cast<size_t>(comm.rank())], fmt::format("{}", fmt::join(counts, ",")));
}

double Comm::all_reduce_double(double value, ReduceOp op) {
  return all_reduce_doubles({value}, op)[0];
}

int64_t Comm::all_reduce_int64(int64_t value, ReduceOp op) {
  DUALIGN_CHECK(op != ReduceOp::avg, "all_reduce_int64: avg of integers is not exact; use sum and divide");
  auto t = torch::full({1}, value, torch::TensorOptions().dtype(torch::kInt64).device(device()));
  all_reduce(t, op);
  return t.cpu().item<int64_t>();
}

int64_t Comm::broadcast_int64(int64_t value, int root) {
  auto t = torch::full({1}, value, torch::TensorOptions().dtype(torch::kInt64).device(device()));
  broadcast(t, root);
  return t.cpu().item<int64_t>();
}

double Comm::broadcast_double(double value, int root) {
  auto t = torch::full({1}, value, torch::TensorOptions().dtype(torch::kFloat64).device(device()));
  broadcast(t, root);
  return t.cpu().item<double>();
}

std::vector<double> Comm::all_reduce_doubles(const std::vector<double>& values, ReduceOp op) {
  if (values.empty()) return {};
  auto t = torch::tensor(values, torch::TensorOptions().dtype(torch::kFloat64)).to(device());
  all_reduce(t, op);
  auto host = t.cpu();
  return {host.data_ptr<double>(), host.data_ptr<double>() + host.numel()};
}

std::unique_ptr<Comm> make_comm(const World& world, c10::Device device) {
  if (device.is_cpu()) return std::make_unique<MpiComm>(world);
  if (device.is_cuda()) {
#if DUALIGN_HAVE_NCCL_BACKEND
    return std::make_unique<NcclComm>(world, device);
#else
    fail("make_comm: device {} needs the NCCL backend, but this build has none (DUALIGN_WITH_NCCL={}); "
         "rebuild with a CUDA toolkit and NCCL, or train on cpu",
         device.str(), DUALIGN_WITH_NCCL);
#endif
  }
  fail("make_comm: no communicator backend for device {} (supported: cpu via MPI, cuda via NCCL)", device.str());
}

}  // namespace dualign::dist
