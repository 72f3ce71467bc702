#include "train/run_dir.h"

#include <array>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <memory>

#include "config/config.h"
#include "config/yaml_path.h"
#include "dualign/build_info.h"
#include "util/error.h"

namespace dualign::train {
namespace {

std::string run_command(const std::string& cmd) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
  if (!pipe) return "";
  std::string out;
  std::array<char, 256> buf{};
  while (fgets(buf.data(), buf.size(), pipe.get())) out += buf.data();
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path);
  DUALIGN_CHECK(out.good(), "cannot write run file {}", path.string());
  out << text;
}

}  // namespace

std::string git_sha() {
  std::string dir = DUALIGN_SOURCE_DIR;
  std::string sha = run_command("git -C '" + dir + "' rev-parse HEAD 2>/dev/null");
  if (sha.empty()) return "unknown";
  std::string status = run_command("git -C '" + dir + "' status --porcelain --untracked-files=no 2>/dev/null");
  return status.empty() ? sha : sha + "-dirty";
}

void write_run_metadata(const std::filesystem::path& dir, const config::Config& cfg, const RunInfo& info) {
  std::filesystem::create_directories(dir);
  write_file(dir / "config.yaml", cfg.to_yaml(/*resolve=*/true));
  write_file(dir / "config.raw.yaml", cfg.to_yaml(/*resolve=*/false));

  YAML::Node overrides(YAML::NodeType::Map);
  overrides["overrides"] = YAML::Node(YAML::NodeType::Sequence);
  for (const auto& o : cfg.composed().overrides) overrides["overrides"].push_back(o);
  for (const auto& [group, option] : cfg.composed().choices) overrides["choices"][group] = option;
  write_file(dir / "overrides.yaml", config::to_yaml(overrides));

  auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  char started[64];
  std::strftime(started, sizeof started, "%Y-%m-%dT%H:%M:%S%z", std::localtime(&now));
  YAML::Node meta(YAML::NodeType::Map);
  meta["git_sha"] = git_sha();
  meta["dualign_version"] = DUALIGN_VERSION;
  meta["libtorch"] = DUALIGN_TORCH_VERSION;
  meta["cuda_compiled"] = DUALIGN_WITH_CUDA == 1;
  meta["nccl_compiled"] = DUALIGN_WITH_NCCL == 1;
  meta["world_size"] = info.world_size;
  meta["started"] = std::string(started);
  meta["argv"] = YAML::Node(YAML::NodeType::Sequence);
  for (const auto& a : info.argv) meta["argv"].push_back(a);
  write_file(dir / "meta.yaml", config::to_yaml(meta));
}

}  // namespace dualign::train
