// dualign: one binary that trains, samples, evaluates and inspects. Each sub-command lives in its own file
// (app/cmd_<name>.cpp) and registers itself; see app/commands.h.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "app/commands.h"
#include "app/version.h"
#include "util/command_line.h"
#include "util/error.h"
#include "util/log.h"

int main(int argc, char** argv) {
  dualign::remember_command_line(argc, argv);
  CLI::App cli{"dualign: align and compose diffusion models (DPO, DMPO, KTO, DDO, constrained, composition)"};
  cli.require_subcommand(0, 1);
  bool show_version = false;
  cli.add_flag("--version", show_version, "Print the LibTorch version and whether CUDA and NCCL were compiled in");
  dualign::app::add_registered_commands(cli);
  try {
    cli.parse(argc, argv);  // runs the selected sub-command's callback
  } catch (const CLI::ParseError& e) {
    return cli.exit(e);
  } catch (const std::exception& e) {
    dualign::log::error("{}", e.what());
    return 1;
  }
  if (show_version) {
    std::fputs(dualign::app::version_text().c_str(), stdout);
    return 0;
  }
  if (cli.get_subcommands().empty()) std::fputs(cli.help().c_str(), stdout);
  return dualign::app::exit_code();
}
