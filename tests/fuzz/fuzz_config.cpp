// libFuzzer harness: the YAML / override composer. The input is split into a primary config, a group file, an
// experiment file and up to 6 command-line overrides, written to a scratch config dir and composed (defaults,
// overrides, interpolation, typed access). Errors must be exceptions (the app prints them); anything else (a
// sanitizer report, a crash, a hang, unbounded memory) is a finding.
#include <fuzzer/FuzzedDataProvider.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "config/config.h"
#include "config/overrides.h"

namespace {

namespace fs = std::filesystem;

const fs::path& scratch_dir() {
  static const fs::path dir = [] {
    fs::path d = fs::temp_directory_path() / ("dualign-fuzz-config-" + std::to_string(::getpid()));
    fs::create_directories(d / "model");
    fs::create_directories(d / "experiment");
    return d;
  }();
  return dir;
}

void write(const fs::path& path, const std::string& text) { std::ofstream(path, std::ios::trunc) << text; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const fs::path& dir = scratch_dir();
  write(dir / "config.yaml", in.ConsumeRandomLengthString(2048));
  write(dir / "model" / "a.yaml", in.ConsumeRandomLengthString(1024));
  write(dir / "experiment" / "e.yaml", in.ConsumeRandomLengthString(1024));
  std::vector<std::string> overrides;
  const int n = in.ConsumeIntegralInRange(0, 6);
  for (int i = 0; i < n; ++i) overrides.push_back(in.ConsumeRandomLengthString(64));
  const bool multirun = in.ConsumeBool();
  try {
    if (multirun) {
      auto runs = dualign::config::expand_multirun(overrides);
      if (runs.size() > 64) return 0;  // a legitimate but large grid: composing each is not the point here
      if (!runs.empty()) overrides = runs.back();
    }
    dualign::config::ComposeOptions o;
    o.config_dir = dir;
    o.overrides = overrides;
    auto cfg = dualign::config::Config::compose(o);
    (void)cfg.to_yaml(true);
    auto root = cfg.root();
    for (const auto& key : root.keys()) (void)cfg.origin(key);
  } catch (const std::exception&) {
    // dualign::Error and YAML exceptions end the command with a message: expected for malformed input.
  }
  return 0;
}
