#include "config/compose.h"

#include <algorithm>
#include <fstream>
#include <set>

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
  YAML::Node doc;
  try {
    doc = YAML::LoadFile(path.string());
  } catch (const YAML::ParserException& e) {
    fail("config file {}:{}: YAML syntax error: {}", path.string(), e.mark.line + 1, e.msg);
  } catch (const YAML::BadFile&) {
    fail("config file {} cannot be read", path.string());
  }
  if (doc.IsNull()) doc = YAML::Node(YAML::NodeType::Map);
  if (!doc.IsMap()) fail("config file {}: expected a mapping at the top level", path.string());
  std::ifstream in(path);
  std::string first_line;
  std::getline(in, first_line);
  f.global_package = first_line.find("@package _global_") != std::string::npos;

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
        e.option = value.IsNull() ? "" : value.as<std::string>();
      } else {
        fail("config file {}:{}: a defaults entry must be `_self_`, `name` or `group: option`", path.string(),
             item.Mark().line + 1);
      }
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

  // A group file: its sibling bases first, then `_self_` (its body) where listed, else last.
  void merge_group(Composed& out, const DefaultEntry& e) {
    ConfigFile f = load_group(e);
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
