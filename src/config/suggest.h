// "Did you mean ...?" for unknown config keys, group options and CLI overrides.
#pragma once
#include <string>
#include <vector>

namespace dualign::config {

size_t edit_distance(const std::string& a, const std::string& b);
// The closest candidate within a sensible distance, or "" if none is close.
std::string closest(const std::string& word, const std::vector<std::string>& candidates);
// " (did you mean 'x'?)" or "".
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace dualign::config
