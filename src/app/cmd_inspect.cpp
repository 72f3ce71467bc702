// `dualign inspect CKPT`: summarise a checkpoint (a file, a ckpt directory -> its `latest`, or a run directory ->
// <run>/ckpt/latest, as `sample` and `eval` accept): step, attributes,
// tensor groups with counts and bytes, the head of the composed config, the git SHA.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <sstream>

#include "app/commands.h"
#include "ckpt/checkpoint.h"
#include "data/h5.h"
#include "models/score_model.h"

namespace dualign::app {
namespace {

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) b /= 1024, ++u;
  return fmt::format("{:.1f} {}", b, units[u]);
}

void inspect(const std::string& target, bool list_tensors, int config_lines) {
  std::string path = models::resolve_checkpoint(target);
  ckpt::CheckpointReader reader(path);
  auto file = h5::File::open(path);
  std::string out = fmt::format("checkpoint {}\n", path);
  for (auto& key : reader.attr_names()) {
    if (key == "format" || key == "version") continue;
    std::string value;
    try {
      value = reader.attr_string(key);
    } catch (const Error&) {
      try {
        value = std::to_string(reader.attr_int(key));
      } catch (const Error&) {
        value = fmt::format("{}", reader.attr_double(key));
      }
    }
    out += fmt::format("  {:<18} {}\n", key, value);
  }
  int64_t total_bytes = 0, total_count = 0;
  out += "  groups:\n";
  for (auto& group : reader.groups()) {
    int64_t bytes = 0, elements = 0;
    auto names = reader.tensor_names(group);
    std::string rows;
    for (auto& name : names) {
      auto info = file.info(group + "/" + name);
      int64_t n = info.rows() * info.row_elements();
      elements += n;
      bytes += n * static_cast<int64_t>(h5::dtype_size(info.dtype));
      if (list_tensors)
        rows += fmt::format("      {:<48} {:<8} {}\n", name, h5::dtype_name(info.dtype), info.shape_str());
    }
    total_bytes += bytes;
    total_count += static_cast<int64_t>(names.size());
    out += fmt::format("    {:<16} {:>6} tensors {:>12} elements {:>12}\n", group, names.size(), elements,
                       human_bytes(static_cast<double>(bytes)));
    out += rows;
  }
  out += fmt::format("  total: {} tensors, {}\n", total_count, human_bytes(static_cast<double>(total_bytes)));
  if (reader.has_text("config_yaml")) {
    std::istringstream config(reader.text("config_yaml"));
    std::string line;
    out += "  config (head):\n";
    for (int i = 0; i < config_lines && std::getline(config, line); ++i) out += "    " + line + "\n";
  }
  std::fputs(out.c_str(), stdout);
}

void add_inspect_command(CLI::App& cli) {
  struct Args {
    std::string target;
    bool tensors = false;
    int config_lines = 12;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = cli.add_subcommand("inspect", "Summarise a checkpoint file or the latest one in a directory");
  cmd->add_option("checkpoint", args->target, "ckpt-<step>.h5, a checkpoint directory (its latest) or a run directory")->required();
  cmd->add_flag("--tensors", args->tensors, "List every tensor with dtype and shape");
  cmd->add_option("--config-lines", args->config_lines, "Lines of the composed config to show")->capture_default_str();
  cmd->callback([args] { inspect(args->target, args->tensors, args->config_lines); });
}

const bool registered = register_command(add_inspect_command);

}  // namespace
}  // namespace dualign::app
