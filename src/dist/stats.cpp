#include "dist/stats.h"

#include <cstdint>

#include "util/error.h"

namespace dualign::dist {
namespace {

// 32-bit FNV-1a of the names: exact in a double, so min == max over ranks iff every rank agrees.
double layout_hash(const std::vector<std::pair<std::string, double>>& entries) {
  uint32_t h = 2166136261u;
  for (const auto& [name, value] : entries) {
    for (unsigned char c : name + '\0') {
      h ^= c;
      h *= 16777619u;
    }
  }
  return static_cast<double>(h);
}

std::string names_of(const std::vector<std::pair<std::string, double>>& entries) {
  std::string s;
  for (const auto& e : entries) s += (s.empty() ? "" : ",") + e.first;
  return s;
}

}  // namespace

void StatsReducer::add(const std::string& name, double value) {
  for (auto& e : entries_)
    if (e.first == name) {
      e.second += value;
      return;
    }
  entries_.emplace_back(name, value);
}

std::vector<std::pair<std::string, double>> StatsReducer::reduce(Comm& comm) {
  const double h = layout_hash(entries_);
  auto extremes = comm.all_reduce_doubles({h, -h, static_cast<double>(entries_.size())}, ReduceOp::max);
  DUALIGN_CHECK(extremes[0] == -extremes[1], "StatsReducer: ranks disagree on the statistics names (this rank {} "
                "has [{}]); every rank must add the same names in the same order every step", comm.rank(),
                names_of(entries_));
  std::vector<double> values;
  values.reserve(entries_.size());
  for (const auto& e : entries_) values.push_back(e.second);
  auto sums = comm.all_reduce_doubles(values, ReduceOp::sum);
  auto result = entries_;
  for (size_t i = 0; i < result.size(); ++i) result[i].second = sums[i];
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
