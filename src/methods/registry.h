// The table of training methods (method_list.h) with their traits: what `dualign plan`, `--help` and config
// validation need to know about a method without building it.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "methods/method.h"

namespace dualign::methods {

struct MethodTraits {
  bool frozen_reference = false;  // keeps a frozen copy of the starting model
  int items_per_sample = 1;       // network inputs per dataset row (2 for a preference pair)
  bool dual_variables = false;    // updates dual variables in end_step
  std::string data;               // dataset formats it trains on ("preference_pairs", "images|points", "none")
};

using MethodFactory = std::unique_ptr<Method> (*)(const config::Section& cfg, const MethodContext& ctx);

struct MethodInfo {
  std::string name;
  MethodFactory make;
  MethodTraits traits;
  std::string summary;
};

// Every method, in method_list.h order.
const std::vector<MethodInfo>& all_methods();
// The method called `name`; an unknown name is an error naming `key` (a config key or a command-line flag) and
// listing the known methods.
const MethodInfo& find_method(const std::string& name, const std::string& key);
// "sft, dpo, ..." for messages and help texts.
std::string method_names();

}  // namespace dualign::methods
