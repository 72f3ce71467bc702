#include <cstdio>

#include "app/commands.h"
#include "app/version.h"

namespace dualign::app {
namespace {

void add_version_command(CLI::App& cli) {
  auto* cmd = cli.add_subcommand("version", "Print what this binary was built with (same as --version)");
  cmd->callback([] { std::fputs(version_text().c_str(), stdout); });
}

const bool registered = register_command(add_version_command);

}  // namespace
}  // namespace dualign::app
