// Sub-command registry. Each command lives in its own file app/cmd_<name>.cpp and registers itself with
//   static const bool registered = dualign::app::register_command(add_<name>_command);
// where add_<name>_command(CLI::App&) adds the sub-command and sets its callback. The callback reports its
// exit code with set_exit_code(); exceptions are caught by main and turned into a clear error + exit 1.
#pragma once
#include <CLI/CLI.hpp>

#include <functional>

namespace dualign::app {

using CommandAdder = std::function<void(CLI::App&)>;

bool register_command(CommandAdder adder);
void add_registered_commands(CLI::App& cli);

void set_exit_code(int code);
int exit_code();

}  // namespace dualign::app
