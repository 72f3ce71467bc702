#include "config/compose.h"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <set>

#include "config/duplicate_keys.h"
#include "config/interpolate.h"
#include "config/overrides.h"
#include "config/suggest.h"
#include "config/yaml_file.h"
#include "config/yaml_path.h"
#include "util/error.h"

namespace dualign::config {
namespace fs = std::filesystem;
namespace {

// One entry of a defaults list.
struct DefaultEntry {
  enum class Kind { self, group, sibling } kind = Kind::group;
  std::string group;   // for group entries ("method"), relative to the config root
  std::string option;  // "" when the entry is `group: null`
  bool optional = false;
  bool is_override = false;
  int line = 0;  // in the file that lists it, for messages
};

// A loaded config file: its content without `defaults`, its defaults entries, and where it lives.
struct ConfigFile {
  fs::path path;
  YAML::Node body;
  std::vector<DefaultEntry> defaults;
  bool global_package = false;
};

ConfigFile load_file(const fs::path& path) {
  ConfigFile f;
  f.path = path;
  std::ifstream in(path);
  if (!in) fail("config file {} cannot be read", path.string());
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  check_duplicate_keys(text, "config file " + path.string());
  YAML::Node doc;
  try {
    doc = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    fail("config file {}:{}: YAML syntax error: {}", path.string(), e.mark.line + 1, e.msg);
  }
  if (doc.IsNull()) doc = YAML::Node(YAML::NodeType::Map);
  if (!doc.IsMap()) fail("config file {}: expected a mapping at the top level", path.string());
  f.global_package = text.substr(0, text.find('\n')).find("@package _global_") != std::string::npos;

  if (doc["defaults"]) {
    const YAML::Node list = doc["defaults"];
    if (!list.IsSequence())
      fail("config file {}:{}: 'defaults' must be a list", path.string(), list.Mark().line + 1);
    for (const auto& item : list) {
      DefaultEntry e;
      if (item.IsScalar()) {
        std::string name = item.as<std::string>();
        e.kind = name == "_self_" ? DefaultEntry::Kind::self : DefaultEntry::Kind::sibling;
        e.option = name;
      } else if (item.IsMap() && item.size() == 1) {
        std::string key = item.begin()->first.as<std::string>();
        const YAML::Node value = item.begin()->second;
        if (key.rfind("override ", 0) == 0) {
          e.is_override = true;
          key = key.substr(9);
        } else if (key.rfind("optional ", 0) == 0) {
          e.optional = true;
          key = key.substr(9);
        }
        if (!key.empty() && key[0] == '/') key = key.substr(1);
        e.group = key;
        if (!value.IsNull() && !value.IsScalar())
          fail("config file {}:{}: defaults entry '{}' must name one option (a list of options is not supported)",
               path.string(), item.Mark().line + 1, key);
        e.option = value.IsNull() ? "" : value.as<std::string>();
      } else {
        fail("config file {}:{}: a defaults entry must be `_self_`, `name` or `group: option`", path.string(),
             item.Mark().line + 1);
      }
      e.line = item.Mark().line + 1;
      f.defaults.push_back(e);
    }
    doc.remove("defaults");
  }
  f.body = doc;
  return f;
}

class Composer {
 public:
  explicit Composer(const ComposeOptions& o) : opt_(o) {}

  Composed run() {
    auto overrides = parse_overrides(opt_.overrides);
    fs::path primary_path = opt_.config_dir / (opt_.config_name + ".yaml");
    if (!fs::exists(primary_path))
      fail("primary config {} not found (config dir: {})", primary_path.string(), opt_.config_dir.string());
    ConfigFile primary = load_file(primary_path);

    // 1. The defaults list of the primary file, with the command line's group choices applied.
    check_primary_defaults(primary);
    std::vector<DefaultEntry> entries = primary.defaults;
    std::vector<Override> value_overrides;
    std::set<std::string> cli_groups;
    for (const auto& o : overrides) {
      if (!is_group(o.key)) {
        value_overrides.push_back(o);
        continue;
      }
      cli_groups.insert(o.key);
      apply_group_override(entries, o);
    }
    // 2. Group files may override other groups' choices (experiments do); the command line wins. Iterate to
    //    a fixed point because an override can select a file that overrides again.
    for (int round = 0;; ++round) {
      if (round > 10) fail("config defaults do not settle: overrides keep changing the group choices");
      bool changed = false;
      for (const auto& e : std::vector<DefaultEntry>(entries)) {
        if (e.kind != DefaultEntry::Kind::group || e.option.empty()) continue;
        for (const auto& d : load_group(e).defaults) {
          if (!d.is_override || cli_groups.count(d.group)) continue;
          auto it = std::find_if(entries.begin(), entries.end(), [&](const DefaultEntry& x) {
            return x.kind == DefaultEntry::Kind::group && x.group == d.group;
          });
          if (it == entries.end())
            fail("config {}: `override /{}` but group '{}' is not in the defaults list", group_path(e).string(),
                 d.group, d.group);
          if (it->option != d.option) {
            it->option = d.option;
            changed = true;
          }
        }
      }
      if (!changed) break;
    }

    // 3. Merge in order; the primary file's own keys go where `_self_` is, or last.
    Composed out;
    out.config = YAML::Node(YAML::NodeType::Map);
    bool self_merged = false;
    for (const auto& e : entries) {
      if (e.kind == DefaultEntry::Kind::self) {
        merge_file(out, primary, "");
        self_merged = true;
      } else if (e.kind == DefaultEntry::Kind::group) {
        out.choices.emplace_back(e.group, e.option.empty() ? "null" : e.option);
        if (e.option.empty()) continue;
        if (e.optional && !fs::exists(group_path(e))) continue;
        merge_group(out, e);
      }
    }
    if (!self_merged) merge_file(out, primary, "");

    // 4. Value overrides, in command-line order.
    for (const auto& o : value_overrides) apply_value_override(out, o);
    out.overrides = opt_.overrides;

    // 5. Interpolation.
    out.resolved = resolve_interpolations(out.config, opt_.now, [&out](const std::string& k) { return out.origin(k); });
    return out;
  }

 private:
  bool is_group(const std::string& key) const {
    return key.find('.') == std::string::npos && fs::is_directory(opt_.config_dir / key);
  }

  fs::path group_path(const DefaultEntry& e) const { return opt_.config_dir / e.group / (e.option + ".yaml"); }

  std::string display(const fs::path& p) const {
    auto rel = p.lexically_relative(opt_.config_dir.parent_path());
    return rel.empty() ? p.string() : rel.string();
  }

  ConfigFile load_group(const DefaultEntry& e) const {
    fs::path path = group_path(e);
    if (!fs::exists(path)) {
      auto options = group_options(opt_.config_dir, e.group);
      std::string list;
      for (const auto& o : options) list += (list.empty() ? "" : ", ") + o;
      fail("config group '{}' has no option '{}'{}; available: {}", e.group, e.option,
           did_you_mean(e.option, options), list);
    }
    return load_file(path);
  }

  void apply_group_override(std::vector<DefaultEntry>& entries, const Override& o) const {
    auto it = std::find_if(entries.begin(), entries.end(), [&](const DefaultEntry& x) {
      return x.kind == DefaultEntry::Kind::group && x.group == o.key;
    });
    std::string option = o.has_value && !o.value.IsNull() ? o.value.as<std::string>() : "";
    switch (o.kind) {
      case Override::Kind::change:
        if (it == entries.end())
          fail("override '{}': group '{}' is not in the defaults list; use '+{}' to add it", o.text, o.key, o.text);
        it->option = option;
        break;
      case Override::Kind::add:
        if (it != entries.end() && !it->option.empty())
          fail("override '{}': group '{}' is already chosen ('{}'); use '{}' to change it", o.text, o.key, it->option,
               o.text.substr(1));
        if (it != entries.end()) {
          it->option = option;
        } else {
          entries.push_back({DefaultEntry::Kind::group, o.key, option, false, false});
        }
        break;
      case Override::Kind::force:
        if (it != entries.end()) {
          it->option = option;
        } else {
          entries.push_back({DefaultEntry::Kind::group, o.key, option, false, false});
        }
        break;
      case Override::Kind::remove:
        if (it == entries.end()) fail("override '{}': group '{}' is not in the defaults list", o.text, o.key);
        entries.erase(it);
        break;
    }
    if (o.kind != Override::Kind::remove && !option.empty()) {
      DefaultEntry probe{DefaultEntry::Kind::group, o.key, option, false, false};
      load_group(probe);  // fail now, naming the option, if it does not exist
    }
  }

  // The primary defaults list: groups (each once), `_self_`; no plain config names (Hydra would merge
  // configs/<name>.yaml; dualign keeps shared keys in the primary file itself).
  void check_primary_defaults(const ConfigFile& primary) const {
    std::map<std::string, int> seen;
    for (const auto& e : primary.defaults) {
      if (e.kind == DefaultEntry::Kind::sibling)
        fail("config file {}:{}: defaults entry '{}' names a config, not a group: the primary defaults list takes "
             "`group: option` entries and `_self_` (put shared keys in the primary file itself)",
             display(primary.path), e.line, e.option);
      if (e.kind != DefaultEntry::Kind::group) continue;
      if (auto [it, inserted] = seen.emplace(e.group, e.line); !inserted)
        fail("config file {}:{}: group '{}' is listed twice in defaults (first at line {}); choose it once, or "
             "change it with `override /{}: option` in a group file",
             display(primary.path), e.line, e.group, it->second, e.group);
    }
  }

  // A group file's own defaults: `_self_`, sibling bases (`- base_name`) and `override /group: option`. Selecting
  // further groups from inside a group file (Hydra's nested defaults) is refused with a message rather than ignored.
  void check_group_defaults(const ConfigFile& f) const {
    for (const auto& d : f.defaults)
      if (d.kind == DefaultEntry::Kind::group && !d.is_override)
        fail("config file {}:{}: defaults entry '{}{}: {}' selects a group from inside a group file, which dualign "
             "does not support; choose the group in the primary defaults list ({}) and, to change its option from "
             "here, write `override /{}: {}`",
             display(f.path), d.line, d.optional ? "optional " : "", d.group, d.option.empty() ? "null" : d.option,
             opt_.config_name + ".yaml", d.group, d.option.empty() ? "null" : d.option);
  }

  // A group file: its sibling bases first, then `_self_` (its body) where listed, else last.
  void merge_group(Composed& out, const DefaultEntry& e) {
    // A sibling base chain that comes back to a file it started from would recurse forever (found by fuzzing).
    const std::string name = e.group + "/" + e.option;
    if (std::find(merging_.begin(), merging_.end(), name) != merging_.end()) {
      std::string chain;
      for (const auto& m : merging_) chain += m + " -> ";
      fail("config group file {}.yaml: its sibling bases form a cycle ({}{})", name, chain, name);
    }
    merging_.push_back(name);
    ConfigFile f = load_group(e);
    check_group_defaults(f);
    std::string package = f.global_package ? "" : e.group;
    bool self_done = false;
    for (const auto& d : f.defaults) {
      if (d.kind == DefaultEntry::Kind::sibling) {
        merge_group(out, {DefaultEntry::Kind::group, e.group, d.option, false, false});
      } else if (d.kind == DefaultEntry::Kind::self) {
        merge_file(out, f, package);
        self_done = true;
      }
    }
    if (!self_done) merge_file(out, f, package);
    merging_.pop_back();
  }

  void merge_file(Composed& out, const ConfigFile& f, const std::string& package) {
    if (package.empty()) {
      merge_into(out.config, f.body);
    } else {
      YAML::Node target = out.config[package];
      if (!target.IsMap()) out.config[package] = YAML::Node(YAML::NodeType::Map);
      YAML::Node t = out.config[package];
      merge_into(t, f.body);
    }
    record_origins(f.body, package, display(f.path), out.origins);
  }

  void apply_value_override(Composed& out, const Override& o) {
    auto existing = find(out.config, o.key);
    auto origin = "override '" + o.text + "'";
    switch (o.kind) {
      case Override::Kind::change:
        if (!existing) {
          auto first = split_path(o.key).front();
          fail("override '{}': key '{}' is not in the config{}. Use '+{}' to add a new key.", o.text,
               find(out.config, first) ? o.key : first, did_you_mean(o.key, all_paths(out.config)), o.text);
        }
        set(out.config, o.key, o.value);
        break;
      case Override::Kind::add:
        if (existing)
          fail("override '{}': key '{}' already exists ({}); use '{}' or '+{}' to change it", o.text, o.key,
               out.origin(o.key), o.text.substr(1), o.text);
        set(out.config, o.key, o.value);
        break;
      case Override::Kind::force:
        set(out.config, o.key, o.value);
        break;
      case Override::Kind::remove:
        if (!existing)
          fail("override '{}': key '{}' is not in the config{}", o.text, o.key,
               did_you_mean(o.key, all_paths(out.config)));
        if (o.has_value && YAML::Dump(*existing) != YAML::Dump(o.value))
          fail("override '{}': key '{}' is '{}', not '{}'", o.text, o.key, YAML::Dump(*existing), o.raw_value);
        erase(out.config, o.key);
        return;
    }
    out.origins[o.key] = origin;
    for (auto& [k, v] : out.origins)
      if (k.rfind(o.key + ".", 0) == 0) v = origin;
  }

  ComposeOptions opt_;
  std::vector<std::string> merging_;  // the group files being merged, outermost first ("model/a"): refuses cycles
};

}  // namespace

std::string Composed::origin(const std::string& key) const {
  std::string k = key;
  while (true) {
    if (auto it = origins.find(k); it != origins.end()) return it->second;
    auto dot = k.rfind('.');
    if (dot == std::string::npos) return "";
    k = k.substr(0, dot);
  }
}

std::vector<std::string> group_options(const fs::path& config_dir, const std::string& group) {
  std::vector<std::string> names;
  if (!fs::is_directory(config_dir / group)) return names;
  for (const auto& entry : fs::directory_iterator(config_dir / group))
    if (entry.path().extension() == ".yaml") names.push_back(entry.path().stem().string());
  std::sort(names.begin(), names.end());
  return names;
}

Composed compose(const ComposeOptions& options) { return Composer(options).run(); }

}  // namespace dualign::config
