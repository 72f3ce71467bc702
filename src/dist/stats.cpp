#include "dist/stats.h"

#include <cstdint>

#include <ATen/ATen.h>

#include "dist/host_sync.h"
#include "util/error.h"

namespace dualign::dist {
namespace {

// 32-bit FNV-1a of the names: exact in a double, so min == max over ranks iff every rank agrees.
double layout_hash(const std::vector<std::string>& names) {
  uint32_t h = 2166136261u;
  for (const auto& name : names) {
    for (unsigned char c : name + '\0') {
      h ^= c;
      h *= 16777619u;
    }
  }
  return static_cast<double>(h);
}

std::string joined(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ",") + n;
  return s;
}

template <typename Entries, typename Name>
std::vector<std::string> names_of(const Entries& entries, Name name) {
  std::vector<std::string> out;
  for (const auto& e : entries) out.push_back(name(e));
  return out;
}

}  // namespace

StatsReducer::Entry& StatsReducer::entry(const std::string& name) {
  for (auto& e : entries_)
    if (e.name == name) return e;
  entries_.push_back(Entry{name, 0.0, {}});
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
  const auto names = names_of(entries_, [](const Entry& e) { return e.name; });
  const double h = layout_hash(names);
  auto extremes = comm.all_reduce_doubles({h, -h, static_cast<double>(entries_.size())}, ReduceOp::max);
  DUALIGN_CHECK(extremes[0] == -extremes[1], "StatsReducer: ranks disagree on the statistics names (this rank {} "
                "has [{}]); every rank must add the same names in the same order every step", comm.rank(),
                joined(names));
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
  fail("StatsReducer: no statistic '{}' in [{}]", name,
       joined(names_of(reduced, [](const std::pair<std::string, double>& e) { return e.first; })));
}

double StatsReducer::ratio(const std::vector<std::pair<std::string, double>>& reduced, const std::string& sum_name,
                           const std::string& count_name) {
  double count = get(reduced, count_name);
  DUALIGN_CHECK(count > 0, "StatsReducer: count '{}' is {} (no samples on any rank)", count_name, count);
  return get(reduced, sum_name) / count;
}

}  // namespace dualign::dist
