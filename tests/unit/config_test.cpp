// Hydra-style config composition: defaults order, every override form, interpolation, typed access, errors.
#include <gtest/gtest.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "config/config.h"
#include "config/overrides.h"
#include "config/yaml_file.h"
#include "config/yaml_path.h"
#include "util/error.h"

namespace dualign::config {
namespace {

std::filesystem::path fixtures() { return std::filesystem::path(DUALIGN_TEST_DIR) / "config_fixtures"; }

Config make(std::vector<std::string> overrides = {}, std::string name = "config") {
  ComposeOptions o;
  o.config_dir = fixtures();
  o.config_name = std::move(name);
  o.overrides = std::move(overrides);
  return Config::compose(o);
}

// Runs `fn`, expects a dualign::Error, and checks its message contains every piece of `needles`.
template <typename F> void expect_error(F fn, std::vector<std::string> needles) {
  try {
    fn();
  } catch (const Error& e) {
    std::string msg = e.what();
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "message: " << msg << "\nmissing: " << n;
    return;
  }
  FAIL() << "expected a dualign::Error";
}

int64_t i64(const Config& c, const std::string& key) {
  auto parts = key.rfind('.');
  return c.section(key.substr(0, parts)).get<int64_t>(key.substr(parts + 1));
}
std::string str(const Config& c, const std::string& key) {
  auto n = find(c.resolved(), key);
  return n ? n->Scalar() : "<missing>";
}

// ---- composition order ------------------------------------------------------------------------------------------
TEST(ConfigCompose, DefaultsMergeGroupsUnderTheirKeys) {
  auto c = make();
  EXPECT_EQ(i64(c, "model.width"), 32);
  EXPECT_EQ(str(c, "method.name"), "sft");
  EXPECT_EQ(i64(c, "train.batch"), 8);
}

TEST(ConfigCompose, SelfAfterGroupsLetsPrimaryWin) { EXPECT_EQ(i64(make(), "train.steps"), 5); }

TEST(ConfigCompose, SelfFirstLetsGroupsWin) { EXPECT_EQ(i64(make({}, "self_first"), "train.steps"), 100); }

TEST(ConfigCompose, NoSelfEntryMeansPrimaryMergesLast) { EXPECT_EQ(i64(make({}, "no_self"), "train.steps"), 5); }

TEST(ConfigCompose, ChoicesAreRecordedInDefaultsOrder) {
  auto c = make({"method=dpo"});
  const auto& ch = c.composed().choices;
  ASSERT_EQ(ch.size(), 4u);
  EXPECT_EQ(ch[0], (std::pair<std::string, std::string>{"model", "small"}));
  EXPECT_EQ(ch[1], (std::pair<std::string, std::string>{"method", "dpo"}));
  EXPECT_EQ(ch[3], (std::pair<std::string, std::string>{"experiment", "null"}));
}

TEST(ConfigCompose, GroupFileExtendsSiblingBase) {
  auto c = make({"model=big"});
  EXPECT_EQ(i64(c, "model.width"), 256);
  EXPECT_EQ(i64(c, "model.depth"), 2);
}

// ---- group overrides --------------------------------------------------------------------------------------------
TEST(ConfigGroups, ChoiceOverrideReplacesWholeGroup) {
  auto c = make({"method=dpo"});
  EXPECT_EQ(str(c, "method.name"), "dpo");
  EXPECT_EQ(i64(c, "method.beta"), 500);
}

TEST(ConfigGroups, UnknownOptionListsAvailableAndSuggests) {
  expect_error([] { make({"method=dpp"}); }, {"method", "dpp", "did you mean 'dpo'", "dmpo, dpo, sft"});
}

TEST(ConfigGroups, ExperimentIsGlobalAndOverridesOtherGroups) {
  auto c = make({"experiment=exp1"});
  EXPECT_EQ(str(c, "method.name"), "dpo");
  EXPECT_EQ(i64(c, "method.beta"), 1000);
  EXPECT_EQ(i64(c, "train.steps"), 7);  // experiment comes after _self_
}

TEST(ConfigGroups, CommandLineChoiceBeatsExperimentOverride) {
  auto c = make({"experiment=exp1", "method=dmpo"});
  EXPECT_EQ(str(c, "method.name"), "dmpo");
  EXPECT_EQ(i64(c, "method.beta"), 1000);
}

TEST(ConfigGroups, PlusAddsGroupNotInDefaults) {
  auto c = make({"+extra=a"});
  EXPECT_TRUE(c.section("extra").get<bool>("flag"));
}

TEST(ConfigGroups, ChangingGroupNotInDefaultsSuggestsPlus) {
  expect_error([] { make({"extra=a"}); }, {"'extra'", "+extra=a"});
}

TEST(ConfigGroups, TildeRemovesGroup) {
  auto c = make({"~model", "~paths"});
  EXPECT_FALSE(c.has("model.width"));
}

// ---- value overrides --------------------------------------------------------------------------------------------
TEST(ConfigOverrides, ChangeExistingKey) { EXPECT_EQ(i64(make({"train.batch=64"}), "train.batch"), 64); }

TEST(ConfigOverrides, ValuesAreTypedByYaml) {
  auto c = make({"train.batch=3", "method.lr=2.5e-3", "train.use_ema=true", "name='007'", "++train.milestones=[1, 2]"});
  auto t = c.section("train");
  EXPECT_EQ(t.get<int>("batch"), 3);
  EXPECT_DOUBLE_EQ(c.section("method").get<double>("lr"), 2.5e-3);
  EXPECT_TRUE(t.get<bool>("use_ema"));
  EXPECT_EQ(c.root().get<std::string>("name"), "007");
  EXPECT_EQ(t.get<std::vector<int64_t>>("milestones"), (std::vector<int64_t>{1, 2}));
}

TEST(ConfigOverrides, ChangingMissingKeyNamesItAndSuggestsPlus) {
  expect_error([] { make({"train.batchsize=3"}); }, {"train.batchsize", "+train.batchsize=3", "did you mean 'train.batch'"});
}

TEST(ConfigOverrides, UnknownTopLevelKeyIsNamed) {
  expect_error([] { make({"no_such.key=1"}); }, {"'no_such'", "not in the config"});
}

TEST(ConfigOverrides, TypoGetsClosestKey) {
  expect_error([] { make({"train.stepz=3"}); }, {"did you mean 'train.steps'"});
}

TEST(ConfigOverrides, PlusAddsNewKey) { EXPECT_EQ(i64(make({"+train.warmup=10"}), "train.warmup"), 10); }

TEST(ConfigOverrides, PlusOnExistingKeyIsAnError) {
  expect_error([] { make({"+train.steps=10"}); }, {"already exists", "train.steps", "config.yaml"});
}

TEST(ConfigOverrides, DoublePlusAddsOrChanges) {
  auto c = make({"++train.steps=11", "++train.new_key=x"});
  EXPECT_EQ(i64(c, "train.steps"), 11);
  EXPECT_EQ(str(c, "train.new_key"), "x");
}

TEST(ConfigOverrides, TildeDeletesKey) { EXPECT_FALSE(make({"~train.log_every"}).has("train.log_every")); }

TEST(ConfigOverrides, TildeOnMissingKeyIsAnError) {
  expect_error([] { make({"~train.nope"}); }, {"train.nope", "not in the config"});
}

TEST(ConfigOverrides, TildeWithValueDeletesOnlyOnMatch) {
  EXPECT_FALSE(make({"~train.batch=8"}).has("train.batch"));
  expect_error([] { make({"~train.batch=9"}); }, {"train.batch", "not '9'"});
}

TEST(ConfigOverrides, MalformedOverridesAreRejected) {
  expect_error([] { parse_override("=3"); }, {"bad override '=3'"});
  expect_error([] { parse_override("a..b=1"); }, {"bad override 'a..b=1'"});
  expect_error([] { parse_override("train.steps"); }, {"missing '=value'"});
  expect_error([] { parse_override("a=[1,"); }, {"not valid YAML"});
}

TEST(ConfigOverrides, LaterOverrideWins) { EXPECT_EQ(i64(make({"train.batch=1", "train.batch=2"}), "train.batch"), 2); }

// ---- interpolation ----------------------------------------------------------------------------------------------
TEST(ConfigInterpolation, StringConcatenation) { EXPECT_EQ(str(make(), "paths.out"), "/data/out"); }

TEST(ConfigInterpolation, WholeValueKeepsTypeAndMaps) {
  auto c = make();
  EXPECT_EQ(c.section("paths").get<int>("width_copy"), 32);
  EXPECT_EQ(c.section("paths").section("model_copy").get<int>("depth"), 2);
}

TEST(ConfigInterpolation, SeesOverriddenValues) {
  auto c = make({"paths.root=/scratch", "model.width=64"});
  EXPECT_EQ(str(c, "paths.out"), "/scratch/out");
  EXPECT_EQ(c.section("paths").get<int>("width_copy"), 64);
}

TEST(ConfigInterpolation, EnvironmentVariablesWithDefault) {
  setenv("DUALIGN_TEST_ROOT", "/env/root", 1);
  unsetenv("DUALIGN_TEST_UNSET");
  auto c = make({"paths.root=${env:DUALIGN_TEST_ROOT}", "++paths.other=${env:DUALIGN_TEST_UNSET,7}"});
  EXPECT_EQ(str(c, "paths.out"), "/env/root/out");
  EXPECT_EQ(c.section("paths").get<int>("other"), 7);
  expect_error([] { make({"++paths.x=${env:DUALIGN_TEST_UNSET}"}); }, {"paths.x", "DUALIGN_TEST_UNSET is not set"});
}

TEST(ConfigInterpolation, NowUsesTheCompositionTime) {
  ComposeOptions o;
  o.config_dir = fixtures();
  o.overrides = {"++run_dir=outputs/${now:%Y}/${now:%H-%M}"};
  std::tm tm{};
  tm.tm_year = 2031 - 1900;
  tm.tm_mon = 4;
  tm.tm_mday = 6;
  tm.tm_hour = 7;
  tm.tm_min = 8;
  o.now = std::chrono::system_clock::from_time_t(std::mktime(&tm));
  EXPECT_EQ(str(Config::compose(o), "run_dir"), "outputs/2031/07-08");
}

TEST(ConfigInterpolation, CycleIsDetectedWithChain) {
  expect_error([] { make({}, "cycle"); }, {"interpolation cycle", "a -> b -> c.d -> a"});
}

TEST(ConfigInterpolation, MissingTargetNamesReferrer) {
  expect_error([] { make({"++paths.bad=${paths.rot}"}); }, {"paths.bad", "paths.rot", "did you mean 'paths.root'"});
}

TEST(ConfigInterpolation, EscapedDollarIsLiteral) {
  auto c = make({R"(++paths.lit=cost\${x})"});
  EXPECT_EQ(str(c, "paths.lit"), "cost${x}");
}

TEST(ConfigInterpolation, UnresolvedConfigKeepsExpressions) {
  auto c = make();
  EXPECT_NE(c.to_yaml(false).find("${paths.root}/out"), std::string::npos);
  EXPECT_NE(c.to_yaml(true).find("/data/out"), std::string::npos);
}

// ---- typed access -----------------------------------------------------------------------------------------------
TEST(ConfigTyped, MissingRequiredKeyNamesKeyAndSuggests) {
  auto t = make().section("train");
  expect_error([&] { t.get<int>("batchs"); }, {"missing required config key 'train.batchs'", "did you mean 'batch'"});
}

TEST(ConfigTyped, WrongTypeNamesKeyFileAndLine) {
  auto c = make({"method=dpo"});
  expect_error([&] { c.section("method").get<int64_t>("name"); },
               {"method.name", "method/dpo.yaml:1", "expected an integer", "dpo"});
  auto o = make({"train.steps=abc"});
  expect_error([&] { o.section("train").get<int64_t>("steps"); }, {"train.steps", "override 'train.steps=abc'"});
}

TEST(ConfigTyped, BooleansAreStrict) {
  auto c = make({"train.use_ema=1"});
  expect_error([&] { c.section("train").get<bool>("use_ema"); }, {"train.use_ema", "expected a boolean"});
}

TEST(ConfigTyped, FloatIsNotAnInteger) {
  auto c = make({"train.batch=1.5"});
  expect_error([&] { c.section("train").get<int>("batch"); }, {"expected an integer", "1.5"});
  EXPECT_DOUBLE_EQ(c.section("train").get<double>("batch"), 1.5);
}

TEST(ConfigTyped, DefaultsApplyOnlyWhenMissing) {
  auto t = make().section("train");
  EXPECT_EQ(t.get<int>("warmup", 3), 3);
  EXPECT_EQ(t.get<int>("batch", 3), 8);
}

TEST(ConfigTyped, FinishRejectsUnknownKeysWithSuggestionAndOrigin) {
  auto c = make({"+train.bach=4"});
  auto t = c.section("train");
  t.get<int>("steps");
  t.get<int>("batch");
  t.get<int>("log_every");
  t.get<bool>("use_ema");
  expect_error([&] { t.finish(); }, {"unknown config key 'train.bach'", "did you mean 'batch'", "override '+train.bach=4'"});
}

TEST(ConfigTyped, FinishPassesWhenEverythingWasRead) {
  auto t = make().section("model");
  t.get<int>("width");
  t.get<int>("depth");
  EXPECT_NO_THROW(t.finish());
}

TEST(ConfigTyped, MissingSectionIsNamed) {
  expect_error([] { make().section("optimizer"); }, {"config section 'optimizer' is missing"});
}

TEST(ConfigFiles, YamlSyntaxErrorNamesFileAndLine) {
  expect_error([] { make({}, "broken"); }, {"broken.yaml:", "YAML syntax error"});
}

TEST(ConfigFiles, MissingPrimaryIsNamed) { expect_error([] { make({}, "nope"); }, {"nope.yaml not found"}); }

// ---- multirun ---------------------------------------------------------------------------------------------------
TEST(ConfigMultirun, CartesianProductInOrder) {
  auto runs = expand_multirun({"a=1,2", "b=x,y", "c=3"});
  ASSERT_EQ(runs.size(), 4u);
  EXPECT_EQ(runs[0], (std::vector<std::string>{"a=1", "b=x", "c=3"}));
  EXPECT_EQ(runs[1], (std::vector<std::string>{"a=1", "b=y", "c=3"}));
  EXPECT_EQ(runs[3], (std::vector<std::string>{"a=2", "b=y", "c=3"}));
}

TEST(ConfigMultirun, BracketsAndQuotesDoNotSplit) {
  auto runs = expand_multirun({"a=[1,2]", "b='x,y'", "method=dpo,dmpo"});
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[1], (std::vector<std::string>{"a=[1,2]", "b='x,y'", "method=dmpo"}));
}

TEST(ConfigMultirun, EachExpandedRunComposes) {
  for (const auto& run : expand_multirun({"method=sft,dpo", "train.batch=2,4"})) {
    auto c = make(run);
    EXPECT_TRUE(c.has("method.name"));
  }
}

TEST(YamlFile, ErrorsNameTheFileAndLine) {
  const auto dir = std::filesystem::temp_directory_path() / ("dualign-yaml-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto path = (dir / "reward.yaml").string();
  std::ofstream(path) << "kind: gmm_target\ntarget: [2.5, 0]\ntypo: 1\n";
  auto cfg = config_from_yaml_file(path);
  auto root = cfg.root();
  EXPECT_EQ(root.get<std::string>("kind"), "gmm_target");
  EXPECT_EQ(root.get<std::vector<double>>("target"), (std::vector<double>{2.5, 0.0}));
  try {
    root.finish();
    FAIL() << "unknown key not reported";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("typo"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("reward.yaml:3"), std::string::npos) << e.what();
  }
  EXPECT_THROW(config_from_yaml_file((dir / "missing.yaml").string()), Error);
  std::ofstream(dir / "list.yaml") << "- 1\n- 2\n";
  EXPECT_THROW(config_from_yaml_file((dir / "list.yaml").string()), Error);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace dualign::config
