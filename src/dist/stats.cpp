#include "dist/stats.h"

#include <cstdint>
#include <type_traits>

#include <ATen/ATen.h>

#include "dist/host_sync.h"
#include "util/error.h"

namespace dualign::dist {
namespace {

// 32-bit FNV-1a of the names: exact in a double, so min == max over ranks iff every rank agrees.
template <typename Entries>
double layout_hash(const Entries& entries) {
  uint32_t h = 2166136261u;
  for (const auto& e : entries) {
    for (unsigned char c : e.name + '\0') {
      h ^= c;
      h *= 16777619u;
    }
  }
  return static_cast<double>(h);
}

template <typename Entries>
std::string names_of(const Entries& entries) {
  std::string s;
  for (const auto& e : entries) {
    if constexpr (std::is_same_v<typename Entries::value_type, std::pair<std::string, double>>)
      s += (s.empty() ? "" : ",") + e.first;
    else
      s += (s.empty() ? "" : ",") + e.name;
  }
  return s;
}

}  // namespace

StatsReducer::Entry& StatsReducer::entry(const std::string& name) {
  for (auto& e : entries_)
    if (e.name == name) return e;
  entries_.push_back({name});
  return entries_.back();
}

void StatsReducer::add(const std::string& name, double value) { entry(name).host += value; }

void StatsReducer::add(const std::string& name, const at::Tensor& value) {
  DUALIGN_CHECK(value.numel() == 1, "StatsReducer: statistic '{}' has {} elements (expected one)", name, value.numel());
  auto& e = entry(name);
  const auto v = value.detach().reshape({}).to(at::kDouble);
  e.device = e.device.defined() ? e.device + v : v;
}

std::vector<std::pair<std::string, double>> StatsReducer::reduce(Comm& comm) {
  const double h = layout_hash(entries_);
  auto extremes = comm.all_reduce_doubles({h, -h, static_cast<double>(entries_.size())}, ReduceOp::max);
  DUALIGN_CHECK(extremes[0] == -extremes[1], "StatsReducer: ranks disagree on the statistics names (this rank {} "
                "has [{}]); every rank must add the same names in the same order every step", comm.rank(),
                names_of(entries_));
  // The device sums reach the host here, in one copy.
  std::vector<at::Tensor> on_device;
  for (const auto& e : entries_)
    if (e.device.defined()) on_device.push_back(e.device);
  const auto device_values = on_device.empty() ? std::vector<double>{} : to_host_doubles(at::stack(on_device));
  std::vector<double> values;
  values.reserve(entries_.size());
  size_t next = 0;
  for (const auto& e : entries_) values.push_back(e.host + (e.device.defined() ? device_values[next++] : 0.0));
  auto sums = comm.all_reduce_doubles(values, ReduceOp::sum);
  std::vector<std::pair<std::string, double>> result;
  for (size_t i = 0; i < entries_.size(); ++i) result.emplace_back(entries_[i].name, sums[i]);
  entries_.clear();
  return result;
}

double StatsReducer::get(const std::vector<std::pair<std::string, double>>& reduced, const std::string& name) {
  for (const auto& e : reduced)
    if (e.first == name) return e.second;
  fail("StatsReducer: no statistic '{}' in [{}]", name, names_of(reduced));
}

double StatsReducer::ratio(const std::vector<std::pair<std::string, double>>& reduced, const std::string& sum_name,
                           const std::string& count_name) {
  double count = get(reduced, count_name);
  DUALIGN_CHECK(count > 0, "StatsReducer: count '{}' is {} (no samples on any rank)", count_name, count);
  return get(reduced, sum_name) / count;
}

}  // namespace dualign::dist
