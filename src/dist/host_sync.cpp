#include "dist/host_sync.h"

#include <ATen/record_function.h>
#include <fmt/format.h>
#include <torch/torch.h>

#include <array>
#include <atomic>
#include <cstring>
#include <mutex>


namespace dualign::dist {
namespace {

std::atomic<int64_t> g_to_host_calls{0};
thread_local bool t_inside_to_host = false;  // the copy to_host() makes is counted once, as to_host

// Ops whose result the host has to wait for on a GPU. Counted whatever the device: on CPU they would
// not wait, but the same line would on a GPU (read host-only tensors through data_ptr instead).
constexpr std::array<const char*, 8> kSyncingOps{
    "aten::_local_scalar_dense",  // .item(), bool(tensor), is_nonzero
    "aten::nonzero",        "aten::masked_select",           "aten::bincount",
    "aten::_unique2",       "aten::unique_dim",              "aten::unique_consecutive",
    "aten::_unique"};

struct OpCounts {
  std::mutex mutex;
  std::map<std::string, int64_t> counts;
  void add(const std::string& name) {
    std::lock_guard lock(mutex);
    ++counts[name];
  }
  std::map<std::string, int64_t> snapshot() {
    std::lock_guard lock(mutex);
    return counts;
  }
};
OpCounts& op_counts() {
  static OpCounts counts;
  return counts;
}

// A copy between host and device waits for the device when it goes to the host, or when it comes from the
// host without non_blocking (PyTorch synchronises the stream after a blocking copy from pageable memory).
const char* blocking_copy_kind(const at::RecordFunction& fn) {
  auto in = fn.inputs();
  if (in.size() < 2 || !in[0].isTensor() || !in[1].isTensor()) return nullptr;
  const auto& dst = in[0].toTensor();
  const auto& src = in[1].toTensor();
  if (!dst.defined() || !src.defined() || dst.device() == src.device()) return nullptr;
  const bool non_blocking = in.size() > 2 && in[2].isBool() && in[2].toBool();
  if (dst.is_cpu()) return "aten::copy_ (device to host)";
  if (src.is_cpu() && !non_blocking) return "aten::copy_ (blocking host to device)";
  return nullptr;
}

std::unique_ptr<at::ObserverContext> on_op(const at::RecordFunction& fn) {
  if (t_inside_to_host) return nullptr;
  const char* name = fn.name();
  if (std::strcmp(name, "aten::copy_") == 0) {
    if (const char* kind = blocking_copy_kind(fn)) op_counts().add(kind);
    return nullptr;
  }
  for (const char* op : kSyncingOps)
    if (std::strcmp(name, op) == 0) {
      op_counts().add(name);
      break;
    }
  return nullptr;
}

int64_t total(const std::map<std::string, int64_t>& m) {
  int64_t n = 0;
  for (const auto& [name, count] : m) n += count;
  return n;
}

}  // namespace

at::Tensor to_host(const at::Tensor& t) {
  ++g_to_host_calls;
  t_inside_to_host = true;
  struct Reset {
    ~Reset() { t_inside_to_host = false; }
  } reset;
  return t.detach().to(torch::kCPU).contiguous();
}

std::vector<double> to_host_doubles(const at::Tensor& t) {
  auto host = to_host(t.detach().to(torch::kFloat64));
  return {host.data_ptr<double>(), host.data_ptr<double>() + host.numel()};
}

int64_t to_host_calls() { return g_to_host_calls.load(); }

HostSyncProbe::HostSyncProbe()
    : handle_(at::addThreadLocalCallback(
          at::RecordFunctionCallback(on_op).needsInputs(true).scopes({at::RecordScope::FUNCTION}))),
      to_host_at_start_(to_host_calls()),
      ops_at_start_(op_counts().snapshot()) {}

HostSyncProbe::~HostSyncProbe() { at::removeCallback(handle_); }

std::map<std::string, int64_t> HostSyncProbe::by_op() const {
  std::map<std::string, int64_t> out;
  for (const auto& [name, count] : op_counts().snapshot()) {
    auto it = ops_at_start_.find(name);
    const int64_t since = count - (it == ops_at_start_.end() ? 0 : it->second);
    if (since > 0) out[name] = since;
  }
  if (const int64_t calls = to_host_calls() - to_host_at_start_; calls > 0) out["to_host"] = calls;
  return out;
}

int64_t HostSyncProbe::count() const { return total(by_op()); }

std::string HostSyncProbe::describe() const {
  std::string s;
  for (const auto& [name, count] : by_op()) s += fmt::format("{}{} x{}", s.empty() ? "" : ", ", name, count);
  return s.empty() ? "none" : s;
}

}  // namespace dualign::dist
