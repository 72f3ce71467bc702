#include "config/config.h"
#include "methods/constrained.h"
#include "methods/method.h"
#include "methods/sft.h"
#include "util/error.h"

namespace dualign::methods {

// Defined in one file per method.
std::unique_ptr<Method> make_dpo(const config::Section& cfg, const MethodContext& ctx);
std::unique_ptr<Method> make_dmpo(const config::Section& cfg, const MethodContext& ctx);
std::unique_ptr<Method> make_kto(const config::Section& cfg, const MethodContext& ctx);
std::unique_ptr<Method> make_mixture(const config::Section& cfg, const MethodContext& ctx);

std::unique_ptr<Method> make_method(const config::Section& method, const MethodContext& ctx) {
  auto name = method.get<std::string>("name");
  std::unique_ptr<Method> built;
  if (name == "sft") {
    built = std::make_unique<Sft>(ctx);
  } else if (name == "dpo") {
    built = make_dpo(method, ctx);
  } else if (name == "dmpo") {
    built = make_dmpo(method, ctx);
  } else if (name == "kto") {
    built = make_kto(method, ctx);
  } else if (name == "constrained") {
    built = make_constrained(method, ctx);
  } else if (name == "mixture") {
    built = make_mixture(method, ctx);
  } else {
    fail("config key '{}': unknown method '{}' (known: sft, dpo, dmpo, kto, constrained, mixture)", method.path("name"),
         name);
  }
  method.finish();
  return built;
}

}  // namespace dualign::methods
