// yaml-cpp keeps the last of two equal keys in a mapping and says nothing; Hydra (PyYAML/OmegaConf) refuses them.
// This walks the parser's events and reports the first duplicate with both lines.
#pragma once
#include <string>

namespace dualign::config {

// Throws dualign::Error "<source>:<line>: duplicate key '<k>' (first at line <n>) ..." when a mapping of `text`
// repeats a key. `source` names the file in the message; for a one-line text (an override) pass lines = false
// and the message names the source alone. Syntax errors are left to the loader.
void check_duplicate_keys(const std::string& text, const std::string& source, bool lines = true);

}  // namespace dualign::config
