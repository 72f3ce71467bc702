// Rank-aware logging. Rank 0 prints to the terminal; every rank can also write its own file
// (<run_dir>/logs/rank<R>.log) so a failure on rank 3 is never lost.
#pragma once
#include <fmt/format.h>

#include <string>

namespace dualign::log {

enum class Level { debug, info, warn, error };

// Called once per process after the rank is known. `file` may be empty (no per-rank file).
void init(int rank, const std::string& file = "", Level level = Level::info);
void open_file(const std::string& file);  // start (or move) the per-rank log file
int rank();

void write(Level level, bool all_ranks, const std::string& message);

// info/warn/debug: rank 0 only on the terminal, every rank in its own file.
template <typename... A> void info(fmt::format_string<A...> f, A&&... a) { write(Level::info, false, fmt::format(f, std::forward<A>(a)...)); }
template <typename... A> void warn(fmt::format_string<A...> f, A&&... a) { write(Level::warn, false, fmt::format(f, std::forward<A>(a)...)); }
template <typename... A> void debug(fmt::format_string<A...> f, A&&... a) { write(Level::debug, false, fmt::format(f, std::forward<A>(a)...)); }
// error: printed by whichever rank hits it, prefixed with the rank.
template <typename... A> void error(fmt::format_string<A...> f, A&&... a) { write(Level::error, true, fmt::format(f, std::forward<A>(a)...)); }

}  // namespace dualign::log
