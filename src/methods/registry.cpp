#include "config/config.h"
#include "methods/method.h"
#include "methods/sft.h"
#include "util/error.h"

namespace dualign::methods {

std::unique_ptr<Method> make_method(const config::Section& method, const MethodContext& ctx) {
  auto name = method.get<std::string>("name");
  std::unique_ptr<Method> built;
  if (name == "sft") {
    built = std::make_unique<Sft>(ctx);
  } else {
    fail("config key '{}': unknown method '{}' (known: sft)", method.path("name"), name);
  }
  method.finish();
  return built;
}

}  // namespace dualign::methods
