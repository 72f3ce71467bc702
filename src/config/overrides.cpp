#include "config/overrides.h"

#include <regex>

#include "config/duplicate_keys.h"
#include "config/sweep.h"
#include "util/error.h"

namespace dualign::config {
namespace {

const std::regex& key_pattern() {
  static const std::regex re(R"(^[A-Za-z_][A-Za-z0-9_\-]*(\.[A-Za-z0-9_\-]+)*$)");
  return re;
}

}  // namespace

Override parse_override(const std::string& text) {
  Override o;
  o.text = text;
  std::string rest = text;
  if (rest.rfind("++", 0) == 0) {
    o.kind = Override::Kind::force;
    rest = rest.substr(2);
  } else if (rest.rfind('+', 0) == 0) {
    o.kind = Override::Kind::add;
    rest = rest.substr(1);
  } else if (rest.rfind('~', 0) == 0) {
    o.kind = Override::Kind::remove;
    rest = rest.substr(1);
  }
  auto eq = rest.find('=');
  o.key = rest.substr(0, eq);
  if (!std::regex_match(o.key, key_pattern()))
    fail("bad override '{}': '{}' is not a config key (expected key=value, +key=value, ++key=value or ~key)", text,
         o.key);
  if (eq == std::string::npos) {
    if (o.kind != Override::Kind::remove)
      fail("bad override '{}': missing '=value' (only ~key may omit the value)", text);
    return o;
  }
  o.raw_value = rest.substr(eq + 1);
  o.has_value = true;
  if (auto values = sweep_values(o.raw_value, text))
    fail("override '{}' is a sweep over {} values: add -m (dualign train -m ...) to run one job per value, or quote "
         "the value ('{}=\"{}\"') if it is one string",
         text, values->size(), rest.substr(0, eq), o.raw_value);
  check_duplicate_keys(o.raw_value, "override '" + text + "'", /*lines=*/false);
  try {
    o.value = o.raw_value.empty() ? YAML::Node(YAML::NodeType::Null) : YAML::Load(o.raw_value);
  } catch (const YAML::Exception& e) {
    fail("bad override '{}': value '{}' is not valid YAML ({})", text, o.raw_value, e.msg);
  }
  return o;
}

std::vector<Override> parse_overrides(const std::vector<std::string>& texts) {
  std::vector<Override> out;
  out.reserve(texts.size());
  for (const auto& t : texts) out.push_back(parse_override(t));
  return out;
}

std::vector<std::vector<std::string>> expand_multirun(const std::vector<std::string>& texts) {
  // Checked before the grid is built: two range() axes within their own limit can still multiply to billions of
  // runs (found by tests/fuzz: range(1,7554) twice ran the process out of memory).
  constexpr size_t kMaxRuns = 100000;
  std::vector<std::vector<std::string>> runs{{}};
  for (const auto& text : texts) {
    auto eq = text.find('=');
    std::vector<std::string> choices{text};
    if (eq != std::string::npos && text[0] != '~')
      if (auto values = sweep_values(text.substr(eq + 1), text)) {
        choices.clear();
        for (const auto& v : *values) choices.push_back(text.substr(0, eq + 1) + v);
      }
    if (runs.size() * choices.size() > kMaxRuns)
      fail("multirun: more than {} runs ({} so far, times {} values of '{}'); split the sweep into smaller ones",
           kMaxRuns, runs.size(), choices.size(), text);
    std::vector<std::vector<std::string>> next;
    next.reserve(runs.size() * choices.size());
    for (const auto& run : runs)
      for (const auto& c : choices) {
        next.push_back(run);
        next.back().push_back(c);
      }
    runs = std::move(next);
  }
  return runs;
}

}  // namespace dualign::config
