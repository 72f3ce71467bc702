#include "methods/registry.h"

#include "config/config.h"
#include "util/error.h"

namespace dualign::methods {

// The factories, one per method file.
#define DUALIGN_METHOD(name, reference, items, duals, data, summary) \
  std::unique_ptr<Method> make_##name(const config::Section& cfg, const MethodContext& ctx);
#include "methods/method_list.h"
#undef DUALIGN_METHOD

const std::vector<MethodInfo>& all_methods() {
  static const std::vector<MethodInfo> table = {
#define DUALIGN_METHOD(name, reference, items, duals, data, summary) \
  {#name, make_##name, {reference, items, duals, data}, summary},
#include "methods/method_list.h"
#undef DUALIGN_METHOD
  };
  return table;
}

std::string method_names() {
  std::string names;
  for (const auto& m : all_methods()) names += (names.empty() ? "" : ", ") + m.name;
  return names;
}

const MethodInfo& find_method(const std::string& name, const std::string& key) {
  for (const auto& m : all_methods())
    if (m.name == name) return m;
  fail("{}: unknown method '{}' (known: {})", key, name, method_names());
}

std::unique_ptr<Method> make_method(const config::Section& method, const MethodContext& ctx) {
  const auto name = method.get<std::string>("name");
  auto built = find_method(name, "config key '" + method.path("name") + "'").make(method, ctx);
  method.finish();
  return built;
}

}  // namespace dualign::methods
