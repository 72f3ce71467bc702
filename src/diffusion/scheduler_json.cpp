#include "diffusion/scheduler_json.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <type_traits>

#include "util/error.h"

namespace dualign::diffusion {
namespace {
using nlohmann::json;

struct KindInfo {
  const char* kind;
  const char* class_name;
  json defaults;  // every key of the class's __init__ with its default (diffusers 0.42)
};

json common_defaults() {
  return {{"num_train_timesteps", 1000}, {"beta_start", 0.0001},  {"beta_end", 0.02},
          {"beta_schedule", "linear"},  {"trained_betas", nullptr}, {"prediction_type", "epsilon"},
          {"timestep_spacing", "leading"}, {"steps_offset", 0}};
}

json with(json base, const json& more) {
  base.update(more);
  return base;
}

const std::vector<KindInfo>& kinds() {
  static const std::vector<KindInfo> table = [] {
    const json thresholding{{"thresholding", false}, {"dynamic_thresholding_ratio", 0.995}, {"sample_max_value", 1.0}};
    const json clip{{"clip_sample", true}, {"clip_sample_range", 1.0}};
    const json zero_snr{{"rescale_betas_zero_snr", false}};
    const json sigma_kinds{{"use_karras_sigmas", false}, {"use_exponential_sigmas", false}, {"use_beta_sigmas", false}};
    std::vector<KindInfo> t;
    t.push_back({"ddim", "DDIMScheduler",
                 with(with(with(with(common_defaults(), thresholding), clip), zero_snr), {{"set_alpha_to_one", true}})});
    t.push_back({"ddpm", "DDPMScheduler",
                 with(with(with(with(common_defaults(), thresholding), clip), zero_snr), {{"variance_type", "fixed_small"}})});
    t.push_back({"pndm", "PNDMScheduler", with(common_defaults(), {{"skip_prk_steps", false}, {"set_alpha_to_one", false}})});
    t.push_back({"euler", "EulerDiscreteScheduler",
                 with(with(with(common_defaults(), zero_snr), sigma_kinds),
                      {{"timestep_spacing", "linspace"}, {"interpolation_type", "linear"}, {"sigma_min", nullptr},
                       {"sigma_max", nullptr}, {"timestep_type", "discrete"}, {"final_sigmas_type", "zero"}})});
    t.push_back({"euler_ancestral", "EulerAncestralDiscreteScheduler",
                 with(with(common_defaults(), zero_snr), {{"timestep_spacing", "linspace"}})});
    t.push_back({"dpmsolver++", "DPMSolverMultistepScheduler",
                 with(with(with(with(common_defaults(), thresholding), zero_snr), sigma_kinds),
                      {{"timestep_spacing", "linspace"}, {"solver_order", 2}, {"algorithm_type", "dpmsolver++"},
                       {"solver_type", "midpoint"}, {"lower_order_final", true}, {"euler_at_final", false},
                       {"use_lu_lambdas", false}, {"use_flow_sigmas", false}, {"flow_shift", 1.0},
                       {"final_sigmas_type", "zero"}, {"lambda_min_clipped", "-inf"}, {"variance_type", nullptr},
                       {"use_dynamic_shifting", false}, {"time_shift_type", "exponential"}})});
    return t;
  }();
  return table;
}

const KindInfo& info_of(const std::string& kind) {
  for (const auto& k : kinds())
    if (kind == k.kind) return k;
  fail("sampler kind '{}': expected ddim | ddpm | pndm | euler | euler_ancestral | dpmsolver++", kind);
}

bool known_anywhere(const std::string& key) {
  if (key == "_class_name" || key == "_diffusers_version") return true;
  for (const auto& k : kinds())
    if (k.defaults.contains(key)) return true;
  return false;
}

// Python's json writes -Infinity / Infinity / NaN (DPMSolverMultistepScheduler's lambda_min_clipped); nlohmann
// rejects them, so turn those bare tokens into strings first.
std::string quote_non_finite(const std::string& text) {
  std::string out;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < text.size()) out += text[++i];
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    bool replaced = false;
    for (const char* token : {"-Infinity", "Infinity", "NaN"}) {
      if (text.compare(i, std::strlen(token), token) == 0) {
        out += fmt::format("\"{}\"", token);
        i += std::strlen(token) - 1;
        replaced = true;
        break;
      }
    }
    if (!replaced) out += c;
  }
  return out;
}

// A JSON number, or the strings Python's json writes for infinities.
double number(const json& v, const std::string& key, const std::string& origin) {
  if (v.is_number()) return v.get<double>();
  if (v.is_string()) {
    const auto s = v.get<std::string>();
    if (s == "-inf" || s == "-Infinity") return -std::numeric_limits<double>::infinity();
    if (s == "inf" || s == "Infinity") return std::numeric_limits<double>::infinity();
  }
  fail("{}: key '{}' must be a number, got {}", origin, key, v.dump());
}

template <class T>
T get(const json& cfg, const std::string& key, const std::string& origin) {
  try {
    return cfg.at(key).get<T>();
  } catch (const json::exception&) {
    fail("{}: key '{}' has the wrong type ({})", origin, key, cfg.at(key).dump());
  }
}

// Rejects settings dualign does not implement, naming the key.
void require(const json& cfg, const std::string& key, const json& supported, const std::string& origin,
             const std::string& why) {
  if (!cfg.contains(key)) return;
  DUALIGN_CHECK(cfg.at(key) == supported, "{}: {} = {} is not supported by dualign ({}); supported: {}", origin, key,
                cfg.at(key).dump(), why, supported.dump());
}

SchedulerSpec from_json(const json& cfg, const std::string& kind, const std::string& origin) {
  SchedulerSpec s;
  s.class_name = info_of(kind).class_name;
  s.schedule.kind = get<std::string>(cfg, "beta_schedule", origin);
  s.schedule.num_train_timesteps = get<int64_t>(cfg, "num_train_timesteps", origin);
  s.schedule.beta_start = number(cfg.at("beta_start"), "beta_start", origin);
  s.schedule.beta_end = number(cfg.at("beta_end"), "beta_end", origin);
  s.schedule.prediction = get<std::string>(cfg, "prediction_type", origin);
  DUALIGN_CHECK(s.schedule.prediction == "epsilon" || s.schedule.prediction == "v_prediction",
                "{}: prediction_type '{}' is not supported (epsilon | v_prediction)", origin, s.schedule.prediction);
  require(cfg, "trained_betas", nullptr, origin, "betas come from beta_schedule");
  require(cfg, "rescale_betas_zero_snr", false, origin, "zero terminal SNR is not implemented");
  require(cfg, "thresholding", false, origin, "dynamic thresholding is not implemented");
  for (const char* key : {"use_exponential_sigmas", "use_beta_sigmas", "use_lu_lambdas", "use_flow_sigmas",
                          "use_dynamic_shifting"})
    require(cfg, key, false, origin, "only the default and Karras noise levels are implemented");
  require(cfg, "interpolation_type", "linear", origin, "log_linear σ interpolation is not implemented");
  require(cfg, "timestep_type", "discrete", origin, "continuous timesteps are not implemented");
  require(cfg, "algorithm_type", "dpmsolver++", origin, "the SDE and non-++ variants are not implemented");
  if (kind == "ddpm") require(cfg, "variance_type", "fixed_small", origin, "DDPM uses the fixed_small variance");
  if (kind == "dpmsolver++") {
    require(cfg, "variance_type", nullptr, origin, "learned variances are not implemented");
    DUALIGN_CHECK(std::isinf(number(cfg.at("lambda_min_clipped"), "lambda_min_clipped", origin)),
                  "{}: lambda_min_clipped = {} is not supported (only -inf: no clipping)", origin,
                  cfg.at("lambda_min_clipped").dump());
  }

  // Keys the class has (cfg holds all of them) set the field; the others keep SamplerConfig's value.
  auto& p = s.sampler;
  p.kind = kind;
  auto read = [&](const char* key, auto& field) {
    if (!cfg.contains(key) || cfg.at(key).is_null()) return;
    using T = std::decay_t<decltype(field)>;
    if constexpr (std::is_same_v<T, double>) field = number(cfg.at(key), key, origin);
    else if constexpr (std::is_same_v<T, std::optional<double>>) field = number(cfg.at(key), key, origin);
    else field = get<T>(cfg, key, origin);
  };
  read("timestep_spacing", p.timestep_spacing);
  read("steps_offset", p.steps_offset);
  read("clip_sample", p.clip_sample);
  read("clip_sample_range", p.clip_sample_range);
  read("set_alpha_to_one", p.set_alpha_to_one);
  read("skip_prk_steps", p.skip_prk_steps);
  read("use_karras_sigmas", p.use_karras_sigmas);
  read("sigma_min", p.sigma_min);
  read("sigma_max", p.sigma_max);
  read("final_sigmas_type", p.final_sigmas_type);
  read("solver_order", p.solver_order);
  read("solver_type", p.solver_type);
  read("lower_order_final", p.lower_order_final);
  read("euler_at_final", p.euler_at_final);
  if (kind != "ddim" && kind != "ddpm") p.clip_sample = false;
  return s;
}

json parse_value(const std::string& text) {
  try {
    return json::parse(text);
  } catch (const json::exception&) {
    return text;  // a bare word: a string
  }
}

}  // namespace

std::string diffusers_class_of(const std::string& kind) { return info_of(kind).class_name; }

std::string kind_of_diffusers_class(const std::string& class_name, const std::string& origin) {
  for (const auto& k : kinds())
    if (class_name == k.class_name) return k.kind;
  std::string known;
  for (const auto& k : kinds()) known += std::string(known.empty() ? "" : ", ") + k.class_name;
  fail("{}: scheduler class '{}' is not supported (supported: {})", origin, class_name, known);
}

SchedulerSpec diffusers_defaults(const std::string& kind) {
  return from_json(info_of(kind).defaults, kind, fmt::format("diffusers defaults of {}", diffusers_class_of(kind)));
}

SchedulerSpec parse_scheduler_config(const std::string& json_text, const std::string& origin, const std::string& kind_in,
                                     const std::vector<std::string>& overrides) {
  json file;
  try {
    file = json::parse(quote_non_finite(json_text));
  } catch (const json::exception& e) {
    fail("{}: not valid JSON: {}", origin, e.what());
  }
  DUALIGN_CHECK(file.is_object(), "{}: expected a JSON object (a diffusers scheduler_config.json)", origin);
  std::string kind = kind_in;
  if (kind.empty()) {
    DUALIGN_CHECK(file.contains("_class_name"), "{}: no _class_name (which diffusers scheduler is it?)", origin);
    kind = kind_of_diffusers_class(file.at("_class_name").get<std::string>(), origin);
  }
  const auto& info = info_of(kind);
  json cfg = info.defaults;
  std::vector<std::string> ignored;
  for (const auto& [key, value] : file.items()) {
    if (cfg.contains(key)) cfg[key] = value;
    else if (!known_anywhere(key)) ignored.push_back(key);
  }
  for (const auto& o : overrides) {
    const auto eq = o.find('=');
    DUALIGN_CHECK(eq != std::string::npos && eq > 0, "scheduler override '{}': expected key=value", o);
    const auto key = o.substr(0, eq);
    DUALIGN_CHECK(cfg.contains(key), "scheduler override '{}': {} has no key '{}'", o, info.class_name, key);
    cfg[key] = parse_value(o.substr(eq + 1));
  }
  auto spec = from_json(cfg, kind, overrides.empty() ? origin : origin + " (with overrides)");
  spec.ignored_keys = std::move(ignored);
  return spec;
}

std::string find_scheduler_config(const std::string& path) {
  namespace fs = std::filesystem;
  if (fs::is_regular_file(path)) return path;
  for (const auto& candidate : {fs::path(path) / "scheduler_config.json", fs::path(path) / "scheduler" / "scheduler_config.json"})
    if (fs::is_regular_file(candidate)) return candidate.string();
  return "";
}

SchedulerSpec read_scheduler_config(const std::string& path, const std::string& kind,
                                    const std::vector<std::string>& overrides) {
  const auto file = find_scheduler_config(path);
  DUALIGN_CHECK(!file.empty(), "'{}' is not a scheduler_config.json, nor a directory holding one (or scheduler/ with one)",
                path);
  std::ifstream in(file);
  DUALIGN_CHECK(in.good(), "cannot read {}", file);
  std::stringstream text;
  text << in.rdbuf();
  return parse_scheduler_config(text.str(), file, kind, overrides);
}

std::string scheduler_config_json(const ScheduleConfig& schedule, const SamplerConfig& p) {
  const auto& info = info_of(p.kind);
  json cfg = info.defaults;
  auto set = [&cfg](const char* key, const json& value) {
    if (cfg.contains(key)) cfg[key] = value;
  };
  set("num_train_timesteps", schedule.num_train_timesteps);
  set("beta_start", schedule.beta_start);
  set("beta_end", schedule.beta_end);
  set("beta_schedule", schedule.kind);
  set("prediction_type", schedule.prediction == "v" ? "v_prediction" : schedule.prediction);
  set("timestep_spacing", p.timestep_spacing);
  set("steps_offset", p.steps_offset);
  set("clip_sample", p.clip_sample);
  set("clip_sample_range", p.clip_sample_range);
  set("set_alpha_to_one", p.set_alpha_to_one);
  set("skip_prk_steps", p.skip_prk_steps);
  set("use_karras_sigmas", p.use_karras_sigmas);
  set("sigma_min", p.sigma_min ? json(*p.sigma_min) : json(nullptr));
  set("sigma_max", p.sigma_max ? json(*p.sigma_max) : json(nullptr));
  set("final_sigmas_type", p.final_sigmas_type);
  set("solver_order", p.solver_order);
  set("solver_type", p.solver_type);
  set("lower_order_final", p.lower_order_final);
  set("euler_at_final", p.euler_at_final);
  if (cfg.contains("lambda_min_clipped")) cfg.erase("lambda_min_clipped");  // -inf is the default and not JSON
  json out{{"_class_name", info.class_name}, {"_diffusers_version", "0.42.1"}};
  out.update(cfg);
  return out.dump(2) + "\n";
}

bool same_schedule(const ScheduleConfig& a, const ScheduleConfig& b) {
  auto close = [](double x, double y) { return std::abs(x - y) <= 1e-9 * std::max(std::abs(x), std::abs(y)); };
  auto pred = [](const std::string& p) { return p == "v" ? std::string("v_prediction") : p; };
  return a.kind == b.kind && a.num_train_timesteps == b.num_train_timesteps && close(a.beta_start, b.beta_start) &&
         close(a.beta_end, b.beta_end) && pred(a.prediction) == pred(b.prediction);
}

std::string describe(const ScheduleConfig& s) {
  return fmt::format("{} {}..{} over {} steps, {}", s.kind, s.beta_start, s.beta_end, s.num_train_timesteps,
                     s.prediction);
}

}  // namespace dualign::diffusion
