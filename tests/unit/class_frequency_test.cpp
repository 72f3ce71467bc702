// The fairness constraint on the policy's own samples (methods/class_frequency, mixture constraint
// class_frequency): counts cover exactly the configured samples, the ranks' slices add up to the one-process
// counts, logit adjustment moves labels toward a rare class, a dual step lowers λ of the over-produced class and
// raises the others, and bad settings fail naming the key or file.
#include <gtest/gtest.h>

#include <filesystem>

#include "common/method_fixture.h"
#include "methods/class_frequency.h"
#include "methods/method.h"
#include "rewards/classifier.h"

namespace dualign::methods {
namespace {

const char* kModel =
    "model: {kind: unet, sample_size: 8, in_channels: 1, out_channels: 1, down_block_types: [DownBlock2D, "
    "DownBlock2D], mid_block_type: UNetMidBlock2D, up_block_types: [UpBlock2D, UpBlock2D], block_out_channels: [8, "
    "16], layers_per_block: 1, norm_num_groups: 4}\n";

// A random 3-class classifier on 1×8×8 images, written where the settings can load it.
std::string write_classifier(const std::string& name, int64_t classes = 3, int64_t size = 8) {
  auto path = (std::filesystem::temp_directory_path() / ("dualign-cf-" + name + ".h5")).string();
  torch::manual_seed(11);
  rewards::ImageClassifier m(rewards::ClassifierConfig{1, size, classes, 4});
  rewards::save_classifier(path, m);
  return path;
}

struct Fixture : test::MethodFixture {
  explicit Fixture(const std::string& method_yaml) : MethodFixture(kModel, method_yaml) {}
};

std::string mixture_yaml(const std::string& classifier, const std::string& frequency = "[1, 1, 1]",
                         const std::string& probe_keys = "samples: 12, steps: 2") {
  return "method: {name: mixture, groups: 3, group_frequency: " + frequency +
         ", constraint: class_frequency, class_frequency: {classifier: " + classifier + ", " + probe_keys +
         "}, dual: {projection: simplex, lr: 0.5, every: 2}}\n";
}

data::Batch image_batch(int64_t step) {
  data::Batch b;
  b.x = torch::randn({6, 1, 8, 8});
  b.group = torch::tensor({0, 1, 2, 0, 1, 2}, torch::kInt64);
  b.global_size = 6;
  b.seed = 99;
  b.step = step;
  return b;
}

ClassFrequencyProbe probe(const Fixture& f, const std::string& classifier, std::vector<double> share,
                          bool logit_adjust) {
  ClassFrequencySettings s;
  s.classifier = classifier;
  s.target = {1.0 / 3, 1.0 / 3, 1.0 / 3};
  s.samples = 12;
  s.steps = 2;
  s.logit_adjust = logit_adjust;
  return ClassFrequencyProbe(s, f.schedule, torch::kCPU, share, "method.class_frequency");
}

TEST(ClassFrequency, RankSlicesAddUpToTheOneProcessCounts) {
  const auto clf = write_classifier("slices");
  Fixture f(mixture_yaml(clf));
  auto p = probe(f, clf, {}, false);
  auto b = image_batch(1);
  auto all = p.count(*f.policy, b, 0, 1);
  EXPECT_EQ(all.sum().item<double>(), 12.0);
  auto r0 = p.count(*f.policy, b, 0, 2), r1 = p.count(*f.policy, b, 1, 2);
  EXPECT_EQ(r0.sum().item<double>(), 6.0);
  EXPECT_TRUE(torch::equal(r0 + r1, all)) << r0 << r1 << all;
  // More ranks than samples: the extra ranks draw none.
  auto many = torch::zeros({3}, torch::kFloat64);
  for (int r = 0; r < 20; ++r) many += p.count(*f.policy, b, r, 20);
  EXPECT_TRUE(torch::equal(many, all));
}

TEST(ClassFrequency, LogitAdjustmentFavoursTheRareTrainingClass) {
  const auto clf = write_classifier("adjust");
  Fixture f(mixture_yaml(clf));
  // A class the classifier saw 1e-12 of the time gets +27.6 added to its logit: every sample becomes that class.
  auto p = probe(f, clf, {0.5, 0.5 - 1e-12, 1e-12}, true);
  auto counts = p.count(*f.policy, image_batch(1), 0, 1);
  EXPECT_EQ(counts[2].item<double>(), 12.0) << counts;
}

TEST(ClassFrequency, ADualStepLowersLambdaOfTheOverProducedClass) {
  const auto clf = write_classifier("dual");
  // logit adjustment with a tiny training share for class 2 makes every sample class 2 (see above).
  Fixture f(mixture_yaml(clf, "[0.5, 0.4999999999995, 0.0000000000005]"));
  auto m = f.method();
  m->loss(*f.policy, image_batch(0));  // not the last step of the window: no probe
  EXPECT_TRUE(m->end_step(1, f.comm).empty());
  m->loss(*f.policy, image_batch(1));
  auto record = m->end_step(2, f.comm);
  // g = target − share: 1/3 − 1 for class 2, 1/3 for the others.
  EXPECT_NEAR(record.at("dual/group2/value"), 1.0 / 3 - 1.0, 1e-12);
  EXPECT_NEAR(record.at("dual/group0/value"), 1.0 / 3, 1e-12);
  auto lambda = m->state().at("lambda");
  EXPECT_LT(lambda[2].item<double>(), 1.0 / 3 - 0.2);
  EXPECT_NEAR(lambda[0].item<double>(), lambda[1].item<double>(), 1e-12);
  EXPECT_NEAR(lambda.sum().item<double>(), 1.0, 1e-12);
}

void expect_error(const std::string& yaml, const std::string& needle) {
  const auto error = test::method_error(kModel, yaml);
  EXPECT_NE(error.find(needle), std::string::npos) << error << "\nfor: " << yaml;
}

TEST(ClassFrequency, ASectionLeftInTheConfigDoesNotStopAnotherConstraint) {
  // The fairness experiment keeps its class_frequency section when an ablation switches the constraint.
  std::string yaml = mixture_yaml(write_classifier("other"));
  yaml.replace(yaml.find("class_frequency,"), 16, "cross_entropy,");
  Fixture f(yaml);
  EXPECT_NO_THROW(f.method()) << yaml;
}

TEST(ClassFrequency, BadSettingsFailNamingTheKeyOrFile) {
  const auto clf = write_classifier("errors");
  expect_error("method: {name: mixture, groups: 3, group_frequency: [1, 1, 1], constraint: class_frequency, "
               "dual: {}}\n",
               "method.class_frequency");
  expect_error(mixture_yaml(clf, "[1, 1, 1]", "target: [1, 1]"), "method.class_frequency.target");
  expect_error(mixture_yaml(clf, "[1, 1, 1]", "samples: 0"), "method.class_frequency.samples");
  expect_error(mixture_yaml("/no/such/classifier.h5"), "/no/such/classifier.h5");
  expect_error(mixture_yaml(write_classifier("four", 4)), "has 4 classes");
  // An image size the classifier does not take: named at the first probe.
  const auto small = write_classifier("small", 3, 4);
  Fixture f(mixture_yaml(small));
  auto m = f.method();
  try {
    m->loss(*f.policy, image_batch(1));
    ADD_FAILURE() << "8x8 images accepted by a 4x4 classifier";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("method.class_frequency.classifier"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace dualign::methods
