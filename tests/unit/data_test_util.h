// Helpers for the data/ckpt unit tests: a fresh temporary directory per test.
#pragma once
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "util/error.h"

namespace dualign::test {

inline std::filesystem::path temp_dir() {
  auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  auto dir = std::filesystem::temp_directory_path() /
             (std::string("dualign-") + info->test_suite_name() + "-" + info->name() + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
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
