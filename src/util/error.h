// Errors that name what went wrong: every failure in dualign is a dualign::Error with a message that says
// which file, key or tensor was involved and what was expected.
#pragma once
#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace dualign {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace dualign

// DUALIGN_CHECK(cond, "format {}", args...) throws dualign::Error with the message and the source location.
#define DUALIGN_CHECK(cond, ...)                                                                      \
  do {                                                                                                \
    if (!(cond))                                                                                      \
      throw ::dualign::Error(::fmt::format(__VA_ARGS__) + ::fmt::format(" [{}:{}]", __FILE__, __LINE__)); \
  } while (0)
