// All-reduced method statistics: reward sums, counts, constraint slacks, KL estimates. Every rank adds the
// same names in the same order; reduce() sums them across ranks in one small collective, so dual variables
// computed from the result are bit-identical on every rank. Statistics given as tensors accumulate on their
// device and reach the host once, in reduce() (the training micro-step makes no host sync: dist/host_sync.h).
#pragma once
#include <ATen/core/Tensor.h>

#include <string>
#include <utility>
#include <vector>

#include "dist/comm.h"

namespace dualign::dist {

class StatsReducer {
 public:
  // Adds to `name` (created on first use, order of first use defines the layout): a number the host knows, or a
  // one-element tensor summed on its device (float64) without waiting for it.
  void add(const std::string& name, double value);
  void add(const std::string& name, const at::Tensor& value);
  // Sums every entry over all ranks (one all_reduce of doubles, plus a check that all ranks used the same
  // names), then clears the local values. Returns name -> global sum in insertion order.
  std::vector<std::pair<std::string, double>> reduce(Comm& comm);
  // Global mean of sum_name / count_name from a reduce() result.
  static double ratio(const std::vector<std::pair<std::string, double>>& reduced, const std::string& sum_name,
                      const std::string& count_name);
  static double get(const std::vector<std::pair<std::string, double>>& reduced, const std::string& name);
  bool empty() const { return entries_.empty(); }

 private:
  struct Entry {
    std::string name;
    double host = 0;
    at::Tensor device;  // float64 sum of the tensors added, or undefined
  };
  Entry& entry(const std::string& name);
  std::vector<Entry> entries_;
};

}  // namespace dualign::dist
