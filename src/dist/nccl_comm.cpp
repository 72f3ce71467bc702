#include "dist/nccl_comm.h"

#include <c10/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <mpi.h>

#include "util/error.h"
#include "util/log.h"

namespace dualign::dist {
namespace {

void nccl_check(ncclResult_t r, const std::string& what) {
  if (r != ncclSuccess) fail("NCCL {} failed: {} ({})", what, ncclGetErrorString(r), static_cast<int>(r));
}

ncclDataType_t nccl_type(const at::Tensor& t, const char* op) {
  switch (t.scalar_type()) {
    case at::kFloat: return ncclFloat32;
    case at::kDouble: return ncclFloat64;
    case at::kHalf: return ncclFloat16;
    case at::kBFloat16: return ncclBfloat16;
    case at::kLong: return ncclInt64;
    case at::kInt: return ncclInt32;
    case at::kByte: return ncclUint8;
    case at::kChar: return ncclInt8;
    default: fail("{}: dtype {} has no NCCL type", op, c10::toString(t.scalar_type()));
  }
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return ncclSum;
    case ReduceOp::avg: return ncclAvg;
    case ReduceOp::max: return ncclMax;
    case ReduceOp::min: return ncclMin;
  }
  return ncclSum;
}

class NcclWork : public Work {
 public:
  explicit NcclWork(std::shared_ptr<c10::cuda::CUDAEvent> done) : done_(std::move(done)) {}
  void wait() override { done_->block(c10::cuda::getCurrentCUDAStream()); }

 private:
  std::shared_ptr<c10::cuda::CUDAEvent> done_;
};

}  // namespace

NcclComm::NcclComm(const World& world, c10::Device device)
    : rank_(world.rank),
      size_(world.size),
      device_(device),
      stream_(c10::cuda::getStreamFromPool(/*isHighPriority=*/true, device.index())),
      timeout_s_(comm_timeout_seconds()) {
  DUALIGN_CHECK(device.is_cuda() && device.has_index(), "NcclComm: needs a CUDA device with an index, got {}",
                device.str());
  c10::cuda::set_device(device.index());
  ncclUniqueId id;
  if (rank_ == 0) nccl_check(ncclGetUniqueId(&id), "ncclGetUniqueId");
  MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
  nccl_check(ncclCommInitRank(&comm_, size_, id, rank_), "ncclCommInitRank");
  MPI_Barrier(MPI_COMM_WORLD);  // as Horovod does: settle every rank after init before the first collective
  watchdog_ = std::thread([this] { watchdog_loop(); });
}

NcclComm::~NcclComm() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  watchdog_.join();
  if (comm_) ncclCommDestroy(comm_);
}

std::unique_ptr<Work> NcclComm::enqueue(const std::string& name, const std::vector<at::Tensor>& tensors,
                                        const std::function<ncclResult_t(cudaStream_t)>& launch) {
  c10::cuda::CUDAGuard guard(device_);
  auto current = c10::cuda::getCurrentCUDAStream(device_.index());
  c10::cuda::CUDAEvent ready;
  ready.record(current);
  ready.block(stream_);
  nccl_check(launch(stream_.stream()), name);
  // The caching allocator must not hand these blocks out again before the comm stream is done with them.
  for (const auto& t : tensors) c10::cuda::CUDACachingAllocator::recordStream(t.storage().data_ptr(), stream_);
  auto done = std::make_shared<c10::cuda::CUDAEvent>();
  done->record(stream_);
  {
    std::lock_guard lock(mutex_);
    pending_.push_back({done, name, std::chrono::steady_clock::now()});
  }
  return std::make_unique<NcclWork>(done);
}

void NcclComm::watchdog_loop() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    cv_.wait_for(lock, std::chrono::duration<double>(std::min(1.0, timeout_s_ / 4)));
    while (!pending_.empty() && pending_.front().done->query()) pending_.pop_front();
    if (pending_.empty()) continue;
    double waited =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - pending_.front().since).count();
    if (waited > timeout_s_) {
      std::string what = pending_.front().name;
      lock.unlock();
      ncclCommAbort(comm_);
      abort_all(fmt::format("collective watchdog: NCCL {} on rank {} of {} did not complete within {:.0f} s; "
                            "another rank is probably dead or hung. Raise DUALIGN_COMM_TIMEOUT_S if needed",
                            what, rank_, size_, timeout_s_));
    }
  }
}

std::unique_ptr<Work> NcclComm::all_reduce_async(const at::Tensor& t, ReduceOp op) {
  check_collective_tensor(*this, t, "all_reduce", "t");
  auto type = nccl_type(t, "all_reduce");
  return enqueue("all_reduce", {t}, [&](cudaStream_t s) {
    return ncclAllReduce(t.data_ptr(), t.data_ptr(), t.numel(), type, nccl_op(op), comm_, s);
  });
}

std::unique_ptr<Work> NcclComm::broadcast_async(const at::Tensor& t, int root) {
  check_collective_tensor(*this, t, "broadcast", "t");
  auto type = nccl_type(t, "broadcast");
  return enqueue("broadcast", {t}, [&](cudaStream_t s) {
    return ncclBroadcast(t.data_ptr(), t.data_ptr(), t.numel(), type, root, comm_, s);
  });
}

std::unique_ptr<Work> NcclComm::all_gather_async(const at::Tensor& out, const at::Tensor& in) {
  check_collective_tensor(*this, out, "all_gather", "out");
  check_collective_tensor(*this, in, "all_gather", "in");
  DUALIGN_CHECK(out.numel() == in.numel() * size_ && out.scalar_type() == in.scalar_type(),
                "all_gather: out has {} elements, expected {} (world {} x in {})", out.numel(),
                in.numel() * size_, size_, in.numel());
  auto type = nccl_type(in, "all_gather");
  return enqueue("all_gather", {out, in}, [&](cudaStream_t s) {
    return ncclAllGather(in.data_ptr(), out.data_ptr(), in.numel(), type, comm_, s);
  });
}

std::unique_ptr<Work> NcclComm::reduce_scatter_async(const at::Tensor& out, const at::Tensor& in, ReduceOp op) {
  check_collective_tensor(*this, out, "reduce_scatter", "out");
  check_collective_tensor(*this, in, "reduce_scatter", "in");
  DUALIGN_CHECK(in.numel() == out.numel() * size_ && out.scalar_type() == in.scalar_type(),
                "reduce_scatter: in has {} elements, expected {} (world {} x out {})", in.numel(),
                out.numel() * size_, size_, out.numel());
  auto type = nccl_type(in, "reduce_scatter");
  return enqueue("reduce_scatter", {out, in}, [&](cudaStream_t s) {
    return ncclReduceScatter(in.data_ptr(), out.data_ptr(), out.numel(), type, nccl_op(op), comm_, s);
  });
}

// NCCL has no uneven reduce-scatter: one ncclReduce per rank's segment (rooted at that rank), in one group.
std::unique_ptr<Work> NcclComm::reduce_scatter_v_async(const at::Tensor& out, const at::Tensor& in,
                                                       const std::vector<int64_t>& counts, ReduceOp op) {
  check_reduce_scatter_v(*this, out, in, counts);
  auto type = nccl_type(in, "reduce_scatter_v");
  return enqueue("reduce_scatter_v", {out, in}, [&](cudaStream_t s) {
    nccl_check(ncclGroupStart(), "ncclGroupStart");
    int64_t offset = 0;
    for (int r = 0; r < size_; ++r) {
      const auto n = counts[static_cast<size_t>(r)];
      if (n > 0) {
        const char* src = static_cast<const char*>(in.data_ptr()) + offset * in.element_size();
        void* dst = r == rank_ ? out.data_ptr() : nullptr;  // only the root's receive buffer is used
        nccl_check(ncclReduce(src, dst, static_cast<size_t>(n), type, nccl_op(op), r, comm_, s), "ncclReduce");
      }
      offset += n;
    }
    return ncclGroupEnd();
  });
}

void NcclComm::barrier() {
  auto t = at::zeros({1}, at::TensorOptions().dtype(at::kFloat).device(device_));
  all_reduce_async(t, ReduceOp::sum)->wait();
  c10::cuda::getCurrentCUDAStream(device_.index()).synchronize();
}

}  // namespace dualign::dist
