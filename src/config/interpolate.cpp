#include "config/interpolate.h"

#include <cstdlib>
#include <ctime>
#include <vector>

#include "config/suggest.h"
#include "config/yaml_path.h"
#include "util/error.h"

namespace dualign::config {
namespace {

class Resolver {
 public:
  Resolver(const YAML::Node& root, std::chrono::system_clock::time_point now,
           const std::function<std::string(const std::string&)>& origin)
      : source_(YAML::Clone(root)), now_(now), origin_(origin) {}

  YAML::Node run() {
    YAML::Node out = YAML::Clone(source_);
    resolve_tree(out, "");
    return out;
  }

 private:
  std::string where(const std::string& key) const {
    std::string o = origin_ ? origin_(key) : "";
    return o.empty() ? "" : " (" + o + ")";
  }

  void resolve_tree(YAML::Node node, const std::string& path) {
    if (node.IsMap()) {
      for (auto kv : node) resolve_tree(kv.second, join_path(path, kv.first.as<std::string>()));
    } else if (node.IsSequence()) {
      for (size_t i = 0; i < node.size(); ++i) resolve_tree(node[i], path + "[" + std::to_string(i) + "]");
    } else if (node.IsScalar()) {
      bool push = stack_.empty() || stack_.back() != path;  // so a cycle's chain starts at the key that began it
      if (push) stack_.push_back(path);
      node = resolve_scalar(node, path);
      if (push) stack_.pop_back();
    }
  }

  // The fully resolved value of key `path` (memoised), following references with cycle detection.
  YAML::Node value_of(const std::string& path, const std::string& referrer) {
    if (auto it = done_.find(path); it != done_.end()) return YAML::Clone(it->second);
    for (const auto& p : stack_)
      if (p == path) {
        std::string chain;
        for (const auto& s : stack_) chain += s + " -> ";
        fail("config interpolation cycle: {}{}", chain, path);
      }
    auto found = find(source_, path);
    if (!found)
      fail("config key '{}'{}: interpolation ${{{}}} refers to a missing key{}", referrer, where(referrer), path,
           did_you_mean(path, all_paths(source_)));
    stack_.push_back(path);
    YAML::Node value = YAML::Clone(*found);
    resolve_tree(value, path);
    stack_.pop_back();
    done_[path] = value;
    return YAML::Clone(value);
  }

  std::string format_now(const std::string& fmt) const {
    std::time_t t = std::chrono::system_clock::to_time_t(now_);
    std::tm tm{};
    localtime_r(&t, &tm);
    char buf[256];
    size_t n = std::strftime(buf, sizeof buf, fmt.c_str(), &tm);
    return std::string(buf, n);
  }

  // Resolves one ${...} expression; `whole` means the scalar is exactly this expression.
  YAML::Node evaluate(const std::string& expr, const std::string& path) {
    if (expr.rfind("env:", 0) == 0) {
      std::string spec = expr.substr(4);
      auto comma = spec.find(',');
      std::string var = spec.substr(0, comma);
      const char* v = std::getenv(var.c_str());
      if (v) return YAML::Node(std::string(v));
      if (comma != std::string::npos) return YAML::Load(spec.substr(comma + 1));
      fail("config key '{}'{}: environment variable {} is not set (use ${{env:{},default}})", path, where(path), var,
           var);
    }
    if (expr.rfind("now:", 0) == 0) return YAML::Node(format_now(expr.substr(4)));
    if (expr.find(':') != std::string::npos)
      fail("config key '{}'{}: unknown resolver in ${{{}}} (known: env, now)", path, where(path), expr);
    return value_of(expr, path);
  }

  YAML::Node resolve_scalar(const YAML::Node& node, const std::string& path) {
    const std::string s = node.Scalar();
    if (s.find("${") == std::string::npos) return node;
    // Whole-value reference: keep the referenced node's type.
    if (s.rfind("${", 0) == 0 && s.find('}') == s.size() - 1 && s.find("${", 2) == std::string::npos)
      return evaluate(s.substr(2, s.size() - 3), path);
    std::string out;
    for (size_t i = 0; i < s.size();) {
      if (s[i] == '\\' && s.compare(i + 1, 2, "${") == 0) {
        out += "${";
        i += 3;
        continue;
      }
      if (s.compare(i, 2, "${") == 0) {
        auto close = s.find('}', i);
        if (close == std::string::npos)
          fail("config key '{}'{}: unterminated '${{' in '{}'", path, where(path), s);
        YAML::Node v = evaluate(s.substr(i + 2, close - i - 2), path);
        if (!v.IsScalar() && !v.IsNull())
          fail("config key '{}'{}: ${{{}}} is a map or list and cannot be embedded in the string '{}'", path,
               where(path), s.substr(i + 2, close - i - 2), s);
        out += v.IsNull() ? "null" : v.Scalar();
        i = close + 1;
        continue;
      }
      out += s[i++];
    }
    return YAML::Node(out);
  }

  YAML::Node source_;
  std::chrono::system_clock::time_point now_;
  std::function<std::string(const std::string&)> origin_;
  std::map<std::string, YAML::Node> done_;
  std::vector<std::string> stack_;
};

}  // namespace

YAML::Node resolve_interpolations(const YAML::Node& root, std::chrono::system_clock::time_point now,
                                  const std::function<std::string(const std::string&)>& origin) {
  return Resolver(root, now, origin).run();
}

}  // namespace dualign::config
