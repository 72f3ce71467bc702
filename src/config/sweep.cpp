#include "config/sweep.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <regex>

#include "util/error.h"

namespace dualign::config {
namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

bool is_integer(const std::string& s) { return std::regex_match(s, std::regex(R"([+-]?\d+)")); }

double number(const std::string& s, const std::string& text) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0' || !std::isfinite(v))
    fail("bad sweep '{}': range() takes numbers, got '{}'", text, s);
  return v;
}

constexpr size_t kMaxSweepValues = 100000;

// range(stop) | range(start, stop) | range(start, stop, step), as Python's range but floats allowed (Hydra).
std::vector<std::string> range_values(const std::vector<std::string>& args, const std::string& text) {
  if (args.empty() || args.size() > 3)
    fail("bad sweep '{}': range() takes 1 to 3 arguments (stop | start, stop | start, stop, step), got {}", text,
         args.size());
  const bool ints = std::all_of(args.begin(), args.end(), is_integer);
  const double start = args.size() == 1 ? 0 : number(args[0], text);
  const double stop = number(args[args.size() == 1 ? 0 : 1], text);
  const double step = args.size() == 3 ? number(args[2], text) : 1;
  if (step == 0) fail("bad sweep '{}': range() step must not be 0", text);
  constexpr double kExactInteger = 9007199254740992.0;  // 2^53: integers beyond it are not exact doubles
  if (ints && (std::abs(start) > kExactInteger || std::abs(stop) > kExactInteger || std::abs(step) > kExactInteger))
    fail("bad sweep '{}': integer range() arguments must lie within +-2^53, got start {}, stop {}, step {}", text,
         args.size() == 1 ? "0" : args[0], args[args.size() == 1 ? 0 : 1], args.size() == 3 ? args[2] : "1");
  const double count = std::ceil((stop - start) / step);
  if (!(count >= 1)) fail("bad sweep '{}': the range is empty (start {}, stop {}, step {})", text, start, stop, step);
  if (count > kMaxSweepValues) fail("bad sweep '{}': {} values; at most {} runs per axis", text, count, kMaxSweepValues);
  std::vector<std::string> out;
  for (int64_t i = 0; i < static_cast<int64_t>(count); ++i) {
    const double v = start + static_cast<double>(i) * step;  // no accumulated rounding
    std::string s = ints ? fmt::format("{}", static_cast<int64_t>(v)) : fmt::format("{}", v);
    if (!ints && s.find_first_of(".eEn") == std::string::npos) s += ".0";  // keep floats floats for YAML
    out.push_back(s);
  }
  return out;
}

}  // namespace

std::vector<std::string> split_top_level_commas(const std::string& s) {
  std::vector<std::string> parts;
  std::string cur;
  int depth = 0;
  char quote = 0;
  for (char c : s) {
    if (quote) {
      if (c == quote) quote = 0;
    } else if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '[' || c == '{' || c == '(') {
      ++depth;
    } else if (c == ']' || c == '}' || c == ')') {
      --depth;
    } else if (c == ',' && depth == 0) {
      parts.push_back(cur);
      cur.clear();
      continue;
    }
    cur.push_back(c);
  }
  parts.push_back(cur);
  return parts;
}

std::optional<std::vector<std::string>> sweep_values(const std::string& raw_value, const std::string& text) {
  static const std::regex function(R"(^\s*(choice|range|interval|glob|sort|shuffle|tag|extend_list)\s*\((.*)\)\s*$)");
  std::smatch m;
  if (std::regex_match(raw_value, m, function)) {
    const std::string name = m[1];
    std::vector<std::string> args;
    if (!trim(m[2]).empty())
      for (const auto& a : split_top_level_commas(m[2])) args.push_back(trim(a));
    for (const auto& a : args)
      if (a.empty()) fail("bad sweep '{}': empty argument in {}()", text, name);
    if (name == "choice") {
      if (args.empty()) fail("bad sweep '{}': choice() needs at least one value", text);
      return args;
    }
    if (name == "range") return range_values(args, text);
    if (name == "interval")
      fail("'{}': interval() is a continuous range, which only optimizing sweepers sample; the grid sweep of "
           "`dualign train -m` needs values: use range(start,stop,step), choice(a,b) or a,b",
           text);
    fail("'{}': the sweep function {}() is not supported; list the values with choice(a,b) or a,b", text, name);
  }
  auto values = split_top_level_commas(raw_value);
  if (values.size() < 2) return std::nullopt;
  for (auto& v : values)
    if (trim(v).empty()) fail("bad sweep '{}': empty value in the comma list", text);
  return values;
}

}  // namespace dualign::config
