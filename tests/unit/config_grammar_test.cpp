// Where the config grammar is as strict as Hydra's: duplicate YAML keys, comma lists and sweep functions
// without -m, the sweep functions with -m, and group files whose defaults select groups.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include <unistd.h>

#include "config/config.h"
#include "config/duplicate_keys.h"
#include "config/overrides.h"
#include "util/error.h"

namespace dualign::config {
namespace {

namespace fs = std::filesystem;

// A throw-away config dir: files given as {relative path, content}.
fs::path config_dir(const std::vector<std::pair<std::string, std::string>>& files) {
  static int counter = 0;
  fs::path dir = fs::temp_directory_path() /
                 ("dualign-grammar-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  fs::remove_all(dir);
  for (const auto& [rel, text] : files) {
    fs::create_directories((dir / rel).parent_path());
    std::ofstream(dir / rel) << text;
  }
  return dir;
}

const std::vector<std::pair<std::string, std::string>> kBase = {
    {"config.yaml", "defaults:\n  - model: small\n  - _self_\n  - experiment: null\nseed: 1\ntrain:\n  lr: 0.1\n"},
    {"model/small.yaml", "width: 8\n"},
};

Config compose_in(const fs::path& dir, std::vector<std::string> overrides = {}) {
  ComposeOptions o;
  o.config_dir = dir;
  o.overrides = std::move(overrides);
  return Config::compose(o);
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

void expect_has(const std::string& msg, std::initializer_list<const char*> needles) {
  for (const char* n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "missing '" << n << "' in: " << msg;
}

}  // namespace

// ---- duplicate keys ---------------------------------------------------------------------------------------------
TEST(ConfigDuplicateKeys, TopLevelAndNestedAreNamedWithBothLines) {
  expect_has(error_of([] { check_duplicate_keys("a: 1\nb: 2\na: 3\n", "f.yaml"); }),
             {"f.yaml:3", "duplicate key 'a'", "first at line 1"});
  expect_has(error_of([] { check_duplicate_keys("t:\n  x: 1\n  y: {z: 1, z: 2}\n", "g.yaml"); }),
             {"g.yaml:3", "'z'"});
}

TEST(ConfigDuplicateKeys, SameKeyInSiblingMapsAndListsIsFine) {
  EXPECT_NO_THROW(check_duplicate_keys("a: {x: 1}\nb: {x: 2}\nl: [{x: 1}, {x: 2}]\nm:\n  - x: 1\n  - x: 2\n", "f"));
  EXPECT_NO_THROW(check_duplicate_keys("a: [1, 1, 1]\n", "f"));     // values may repeat
  EXPECT_NO_THROW(check_duplicate_keys("a: {x: [1, {x: 2}]}\n", "f"));
  EXPECT_NO_THROW(check_duplicate_keys("a: [unclosed\n", "f"));      // syntax errors are the loader's to report
}

// Found by the fuzzer: yaml-cpp 0.7 returns empty documents forever from text that starts with ','; the check
// reads the first document only (as YAML::Load does) and returns.
TEST(ConfigDuplicateKeys, TextStartingWithACommaDoesNotHang) {
  EXPECT_NO_THROW(check_duplicate_keys(", 2, {a: 3}]\n", "f"));
  EXPECT_NO_THROW(check_duplicate_keys(",", "override 'x=,'", /*lines=*/false));
}

TEST(ConfigDuplicateKeys, ComposeRejectsThemInGroupFilesAndOverrides) {
  auto files = kBase;
  files.push_back({"model/dup.yaml", "width: 8\ndepth: 2\nwidth: 16\n"});
  auto dir = config_dir(files);
  expect_has(error_of([&] { compose_in(dir, {"model=dup"}); }), {"model/dup.yaml:3", "duplicate key 'width'"});
  expect_has(error_of([&] { compose_in(dir, {"train.lr={a: 1, a: 2}"}); }), {"override 'train.lr={a: 1, a: 2}'", "'a'"});
}

// ---- sweeps without -m -------------------------------------------------------------------------------------------
TEST(ConfigSweepSyntax, CommaListWithoutMultirunSuggestsDashM) {
  expect_has(error_of([] { parse_override("train.lr=1e-3,3e-4"); }), {"train.lr=1e-3,3e-4", "-m", "2 values"});
  expect_has(error_of([] { parse_override("seed=range(0,3)"); }), {"seed=range(0,3)", "-m", "3 values"});
  expect_has(error_of([] { parse_override("method=choice(sft,dpo)"); }), {"-m"});
}

TEST(ConfigSweepSyntax, QuotedStringsListsAndInterpolationsStayValues) {
  EXPECT_EQ(parse_override("a='x,y'").value.as<std::string>(), "x,y");
  EXPECT_EQ(parse_override("a=\"x,y\"").value.as<std::string>(), "x,y");
  EXPECT_EQ(parse_override("train.betas=[0.9,0.99]").value.size(), 2u);
  EXPECT_TRUE(parse_override("a={x: 1, y: 2}").value.IsMap());
  EXPECT_EQ(parse_override("a=${env:HOME,/tmp}").raw_value, "${env:HOME,/tmp}");
}

// ---- sweeps with -m ---------------------------------------------------------------------------------------------
TEST(ConfigSweepSyntax, ChoiceAndRangeExpandLikeHydrasBasicSweeper) {
  auto runs = expand_multirun({"method=choice(sft, dpo)", "seed=range(3)", "x=range(1,7,2)"});
  ASSERT_EQ(runs.size(), 2u * 3u * 3u);
  EXPECT_EQ(runs[0], (std::vector<std::string>{"method=sft", "seed=0", "x=1"}));
  EXPECT_EQ(runs.back(), (std::vector<std::string>{"method=dpo", "seed=2", "x=5"}));
  auto floats = expand_multirun({"lr=range(0,1,0.25)"});
  ASSERT_EQ(floats.size(), 4u);
  EXPECT_EQ(floats[0][0], "lr=0.0");  // stays a float for YAML
  EXPECT_EQ(floats[3][0], "lr=0.75");
  auto down = expand_multirun({"k=range(5,1,-2)"});
  ASSERT_EQ(down.size(), 2u);
  EXPECT_EQ(down[1][0], "k=3");
  EXPECT_EQ(expand_multirun({"train.betas=[0.9,0.99]"}).size(), 1u);
}

TEST(ConfigSweepSyntax, UnsupportedAndMalformedFunctionsAreNamed) {
  expect_has(error_of([] { expand_multirun({"lr=interval(0,1)"}); }), {"interval()", "range(start,stop,step)"});
  expect_has(error_of([] { expand_multirun({"m=glob(*)"}); }), {"glob()", "not supported"});
  expect_has(error_of([] { expand_multirun({"s=range(0,3,0)"}); }), {"step must not be 0"});
  // Found by fuzzing: integer arguments beyond 2^53 made the values' int64 conversion overflow (UBSan).
  expect_has(error_of([] { expand_multirun({"d=range(0,70000000000000000000,62407302648896623)"}); }),
             {"within +-2^53", "70000000000000000000"});
  expect_has(error_of([] { expand_multirun({"s=range(3,0)"}); }), {"empty"});
  expect_has(error_of([] { expand_multirun({"s=range(a,3)"}); }), {"numbers", "'a'"});
  // Found by the fuzzer: each axis within its limit, the grid not (57 million runs).
  expect_has(error_of([] { expand_multirun({"seed=range(1,7554)", "x=range(1,7554)"}); }),
             {"more than 100000 runs", "7553 so far", "'x=range(1,7554)'"});
  expect_has(error_of([] { expand_multirun({"s=range(0,1,2,3)"}); }), {"1 to 3 arguments"});
  expect_has(error_of([] { expand_multirun({"s=choice()"}); }), {"at least one value"});
  expect_has(error_of([] { expand_multirun({"s=1,,2"}); }), {"empty value"});
  expect_has(error_of([] { expand_multirun({"s=range(0,1e9)"}); }), {"at most"});
}

// ---- defaults lists ---------------------------------------------------------------------------------------------
TEST(ConfigGroupDefaults, GroupFileSelectingAGroupIsRefusedNotIgnored) {
  auto files = kBase;
  files.push_back({"model/nested.yaml", "defaults:\n  - /method: dpo\n  - _self_\nwidth: 4\n"});
  files.push_back({"method/dpo.yaml", "beta: 1\n"});
  auto dir = config_dir(files);
  expect_has(error_of([&] { compose_in(dir, {"model=nested"}); }),
             {"model/nested.yaml:2", "/method: dpo", "override /method: dpo", "config.yaml"});
}

TEST(ConfigGroupDefaults, GroupFileOverridesAndSiblingBasesStillWork) {
  auto files = kBase;
  files.push_back({"model/big.yaml", "defaults:\n  - small\n  - _self_\nwidth: 64\n"});
  files.push_back({"experiment/e.yaml", "# @package _global_\ndefaults:\n  - override /model: big\nseed: 3\n"});
  auto dir = config_dir(files);
  auto c = compose_in(dir, {"experiment=e"});
  EXPECT_EQ(c.section("model").get<int64_t>("width"), 64);
  EXPECT_EQ(c.root().get<int64_t>("seed"), 3);
}

// Found by fuzzing: a group file naming itself (or a chain coming back) as a sibling base recursed until the stack
// overflowed.
TEST(ConfigGroupDefaults, SiblingBaseCyclesAreNamed) {
  auto files = kBase;
  files.push_back({"model/self.yaml", "defaults:\n  - self\nwidth: 4\n"});
  files.push_back({"model/a.yaml", "defaults:\n  - b\nwidth: 4\n"});
  files.push_back({"model/b.yaml", "defaults:\n  - a\nwidth: 8\n"});
  auto dir = config_dir(files);
  expect_has(error_of([&] { compose_in(dir, {"model=self"}); }), {"model/self -> model/self", "cycle"});
  expect_has(error_of([&] { compose_in(dir, {"model=a"}); }), {"model/a -> model/b -> model/a", "cycle"});
}

TEST(ConfigGroupDefaults, PrimaryListRejectsRepeatsAndConfigNames) {
  auto files = kBase;
  files[0].second = "defaults:\n  - model: small\n  - model: small\nseed: 1\n";
  expect_has(error_of([&] { compose_in(config_dir(files)); }), {"config.yaml:3", "'model' is listed twice", "line 2"});
  files[0].second = "defaults:\n  - model: small\n  - common\nseed: 1\n";
  expect_has(error_of([&] { compose_in(config_dir(files)); }), {"config.yaml:3", "'common'", "names a config"});
  files[0].second = "defaults:\n  - model: [small, big]\nseed: 1\n";
  expect_has(error_of([&] { compose_in(config_dir(files)); }), {"config.yaml:2", "one option"});
}

}  // namespace dualign::config
