// Helpers for the data/ckpt unit tests: a fresh temporary directory per test.
#pragma once
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "util/error.h"

namespace dualign::test {

// Removes the test's directories when the process exits normally (ctest runs one test per process).
struct TempDirs {
  std::vector<std::filesystem::path> dirs;
  ~TempDirs() {
    std::error_code ec;
    for (auto& d : dirs) std::filesystem::remove_all(d, ec);
  }
};

inline std::filesystem::path temp_dir() {
  static TempDirs created;
  auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  auto dir = std::filesystem::temp_directory_path() /
             (std::string("dualign-") + info->test_suite_name() + "-" + info->name() + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  created.dirs.push_back(dir);
  return dir;
}

// Expects `statement` to throw dualign::Error whose message contains every one of `parts`.
#define EXPECT_ERROR_MENTIONS(statement, ...)                                                   \
  do {                                                                                          \
    try {                                                                                       \
      statement;                                                                                \
      ADD_FAILURE() << "expected a dualign::Error from " #statement;                            \
    } catch (const ::dualign::Error& e) {                                                       \
      for (const std::string& part : std::initializer_list<std::string>{__VA_ARGS__})                                                    \
        EXPECT_NE(std::string(e.what()).find(part), std::string::npos)                          \
            << "message '" << e.what() << "' does not mention '" << part << "'";                \
    }                                                                                           \
  } while (0)

}  // namespace dualign::test
