#include "config/config.h"

#include <functional>

#include "config/suggest.h"
#include "config/yaml_path.h"
#include "util/error.h"

namespace dualign::config {

// ---- Config -------------------------------------------------------------------------------------------------

Config Config::compose(const ComposeOptions& options) { return Config(config::compose(options)); }

Config::Config(Composed composed) : composed_(std::make_shared<const Composed>(std::move(composed))) {}

Section Config::root() const { return Section(composed_, "", composed_->resolved); }

Section Config::section(const std::string& path) const { return root().section(path); }

bool Config::has(const std::string& path) const { return find(composed_->resolved, path).has_value(); }

std::string Config::to_yaml(bool resolve) const {
  return config::to_yaml(resolve ? composed_->resolved : composed_->config);
}

// ---- Section ------------------------------------------------------------------------------------------------

Section::Section(std::shared_ptr<const Composed> composed, std::string prefix, YAML::Node node)
    : composed_(std::move(composed)), prefix_(std::move(prefix)), node_(node) {}

std::string Section::path(const std::string& key) const { return join_path(prefix_, key); }

std::string Section::where(const std::string& key) const {
  std::string o = composed_->origin(path(key));
  return o.empty() ? "" : " (" + o + ")";
}

YAML::Node Section::child(const std::string& key) const {
  read_.insert(key);
  const YAML::Node& n = node_;
  return n[key];
}

bool Section::has(const std::string& key) const {
  const YAML::Node& n = node_;
  return n.IsMap() && n[key].IsDefined();
}

std::vector<std::string> Section::keys() const {
  std::vector<std::string> out;
  if (node_.IsMap())
    for (const auto& kv : node_) out.push_back(kv.first.as<std::string>());
  return out;
}

Section Section::section(const std::string& key) const {
  YAML::Node n = child(key);
  if (!n.IsDefined()) {
    std::vector<std::string> candidates = keys();
    fail("config section '{}' is missing{}{}", path(key), where(key), did_you_mean(key, candidates));
  }
  if (!n.IsMap()) fail("config key '{}'{}: expected a section (mapping), got '{}'", path(key), where(key), YAML::Dump(n));
  return Section(composed_, path(key), n);
}

void Section::type_error(const std::string& key, const char* expected, const YAML::Node& node) const {
  fail("config key '{}'{}: expected {}, got '{}'", path(key), where(key), expected, YAML::Dump(node));
}

void Section::finish(const std::vector<std::string>& also_known) const {
  std::vector<std::string> known(read_.begin(), read_.end());
  known.insert(known.end(), also_known.begin(), also_known.end());
  for (const auto& k : keys()) {
    if (std::find(known.begin(), known.end(), k) != known.end()) continue;
    fail("unknown config key '{}'{}{}", path(k), where(k), did_you_mean(k, known));
  }
}

namespace {
template <typename T> const char* type_name();
template <> const char* type_name<bool>() { return "a boolean (true/false)"; }
template <> const char* type_name<int>() { return "an integer"; }
template <> const char* type_name<int64_t>() { return "an integer"; }
template <> const char* type_name<double>() { return "a number"; }
template <> const char* type_name<std::string>() { return "a string"; }

template <typename T> bool convert(const YAML::Node& n, T& out) {
  if (!n.IsScalar()) return false;
  try {
    out = n.as<T>();
    return true;
  } catch (const YAML::Exception&) {
    return false;
  }
}
// YAML reads "1.5" as an int64 successfully on some inputs and "1e-4" as int fails; be strict about booleans.
template <> bool convert<bool>(const YAML::Node& n, bool& out) {
  if (!n.IsScalar()) return false;
  const auto& s = n.Scalar();
  if (s == "true" || s == "True" || s == "TRUE") return out = true, true;
  if (s == "false" || s == "False" || s == "FALSE") return out = false, true;
  return false;
}
}  // namespace

template <typename T> T Section::get(const std::string& key) const {
  YAML::Node n = child(key);
  if (!n.IsDefined() || n.IsNull()) {
    if (!n.IsDefined())
      fail("missing required config key '{}'{}{}", path(key), where(key), did_you_mean(key, keys()));
    fail("config key '{}'{}: expected {}, got null (a required value was not set)", path(key), where(key),
         type_name<T>());
  }
  T value{};
  if (!convert(n, value)) type_error(key, type_name<T>(), n);
  return value;
}

template <typename T> T Section::get(const std::string& key, const T& fallback) const {
  YAML::Node n = child(key);
  if (!n.IsDefined()) return fallback;
  return get<T>(key);
}

// Lists: every element must convert to T; the error shows the whole list.
template <typename T>
std::vector<T> read_list(const YAML::Node& n, const std::function<void(const char*)>& type_error, const char* expected) {
  if (!n.IsSequence()) type_error(expected);
  std::vector<T> out;
  for (const auto& item : n) {
    T v{};
    if (!convert(item, v)) type_error(expected);
    out.push_back(v);
  }
  return out;
}

#define DUALIGN_LIST_GETTER(T, expected)                                                                      \
  template <> std::vector<T> Section::get<std::vector<T>>(const std::string& key) const {                    \
    YAML::Node n = child(key);                                                                                \
    if (!n.IsDefined())                                                                                       \
      fail("missing required config key '{}'{}{}", path(key), where(key), did_you_mean(key, keys()));         \
    return read_list<T>(n, [&](const char* e) { type_error(key, e, n); }, expected);                          \
  }
DUALIGN_LIST_GETTER(double, "a list of numbers")
DUALIGN_LIST_GETTER(int64_t, "a list of integers")
DUALIGN_LIST_GETTER(std::string, "a list of strings")
#undef DUALIGN_LIST_GETTER

template <>
std::vector<std::vector<double>> Section::get<std::vector<std::vector<double>>>(const std::string& key) const {
  YAML::Node n = child(key);
  if (!n.IsDefined()) fail("missing required config key '{}'{}{}", path(key), where(key), did_you_mean(key, keys()));
  const char* expected = "a list of lists of numbers (a matrix)";
  if (!n.IsSequence()) type_error(key, expected, n);
  std::vector<std::vector<double>> out;
  for (const auto& row : n) {
    if (!row.IsSequence()) type_error(key, expected, n);
    out.emplace_back();
    for (const auto& item : row) {
      double v;
      if (!convert(item, v)) type_error(key, expected, n);
      out.back().push_back(v);
    }
  }
  return out;
}

template bool Section::get<bool>(const std::string&) const;
template int Section::get<int>(const std::string&) const;
template int64_t Section::get<int64_t>(const std::string&) const;
template double Section::get<double>(const std::string&) const;
template std::string Section::get<std::string>(const std::string&) const;
template bool Section::get<bool>(const std::string&, const bool&) const;
template int Section::get<int>(const std::string&, const int&) const;
template int64_t Section::get<int64_t>(const std::string&, const int64_t&) const;
template double Section::get<double>(const std::string&, const double&) const;
template std::string Section::get<std::string>(const std::string&, const std::string&) const;
template std::vector<double> Section::get<std::vector<double>>(const std::string&, const std::vector<double>&) const;
template std::vector<int64_t> Section::get<std::vector<int64_t>>(const std::string&, const std::vector<int64_t>&) const;
template std::vector<std::string> Section::get<std::vector<std::string>>(const std::string&,
                                                                           const std::vector<std::string>&) const;

}  // namespace dualign::config
