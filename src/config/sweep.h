// The sweep grammar of `dualign train -m` (Hydra's basic sweeper):
//   key=a,b,c              one run per value (commas inside [], {}, quotes or ${...} do not split)
//   key=choice(a,b,c)      the same
//   key=range(stop) | range(start,stop[,step])   start, start+step, ... < stop (Python's range; floats allowed)
// interval(), glob() and the other Hydra functions are refused with a message (a grid needs a list of values).
// Without -m, a value that is a sweep is an error that suggests -m: a comma list would otherwise become a string.
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace dualign::config {

// Splits at commas that are not inside brackets, braces or quotes.
std::vector<std::string> split_top_level_commas(const std::string& s);

// The values `raw_value` sweeps over, or nullopt when it is a single value. `text` is the whole override, for
// messages. Throws for unsupported or malformed sweep functions.
std::optional<std::vector<std::string>> sweep_values(const std::string& raw_value, const std::string& text);

}  // namespace dualign::config
