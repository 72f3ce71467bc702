#include "app/commands.h"

#include <vector>

namespace dualign::app {
namespace {
std::vector<CommandAdder>& registry() {
  static std::vector<CommandAdder> adders;
  return adders;
}
int g_exit_code = 0;
}  // namespace

bool register_command(CommandAdder adder) {
  registry().push_back(std::move(adder));
  return true;
}

void add_registered_commands(CLI::App& cli) {
  for (auto& add : registry()) add(cli);
}

void set_exit_code(int code) { g_exit_code = code; }
int exit_code() { return g_exit_code; }

}  // namespace dualign::app
