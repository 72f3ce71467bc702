// The class shares of the policy's own samples, for the fairness constraint of the mixture method
// (`constraint: class_frequency`, see mixture.h): draw n samples with a short deterministic DDIM chain, label them
// with an image classifier trained on the training data, and count per class.
//
// Why a classifier and not the per-class losses: the per-class ELBO measures mass AND within-class fit, and the
// rare classes are exactly the ones whose fit changes most while fine-tuning (measured in mixture.h), so equal
// per-class KL estimates do not mean equal class shares. The count of the model's samples measures the shares
// directly; its noise (binomial, ±√(p(1−p)/n)) is smoothed by the dual's slack EMA.
//
// Prior shift: a classifier trained on imbalanced data favours the frequent classes on ambiguous samples. With
// `logit_adjust` the log training shares are subtracted from its logits (logit adjustment), which turns its
// argmax into the one of a classifier trained on balanced classes (same likelihoods, uniform prior).
//
// The draws x_T are made for the global set of n samples from the step's seed and split over ranks (rank r takes
// a contiguous slice), so the global counts do not depend on the number of ranks.
//
// Keys (method.class_frequency):
//   classifier: PATH        image classifier checkpoint (dualign reward train-classifier); one output per group
//   target: [..]            target share of each group (normalised); default uniform
//   samples: 128            global samples per dual update
//   steps: 10               DDIM steps (eta 0) per sample
//   logit_adjust: true      subtract log method.group_frequency from the logits (see above)
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "data/batch.h"
#include "diffusion/sampler.h"
#include "models/score_model.h"
#include "rewards/classifier.h"

namespace dualign::config {
class Section;
}

namespace dualign::methods {

struct ClassFrequencySettings {
  std::string classifier;
  std::vector<double> target;  // normalised, one per group
  int64_t samples = 128;
  int64_t steps = 10;
  bool logit_adjust = true;

  // Reads `section` (method.class_frequency) for m groups; errors name the key.
  static ClassFrequencySettings read(const config::Section& section, int64_t m);
};

class ClassFrequencyProbe {
 public:
  // `training_share` (normalised, one per group) is used by logit_adjust; `key` names the config section in errors.
  ClassFrequencyProbe(ClassFrequencySettings settings, const diffusion::NoiseSchedule& schedule, torch::Device device,
                      const std::vector<double>& training_share, const std::string& key);

  const ClassFrequencySettings& settings() const { return s_; }

  // This rank's share of the global sample set for this batch's step: per-group counts of the classifier's labels
  // (float64 [m]); their sum is this rank's number of samples.
  torch::Tensor count(models::ScoreModel& policy, const data::Batch& batch, int rank, int world);

 private:
  ClassFrequencySettings s_;
  diffusion::DiscreteSampler sampler_;
  torch::Device device_;
  rewards::ImageClassifier classifier_{nullptr};
  torch::Tensor log_prior_;  // [m] float32 on device (zeros without logit_adjust)
  std::string key_;
};

}  // namespace dualign::methods
