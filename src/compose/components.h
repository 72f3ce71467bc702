// The models being composed, seen as ε predictors on one shared noise schedule. A component is either a trained
// score model (any architecture, ε or v prediction: converted to ε) or the exact ε of a Gaussian mixture (the
// 2-D oracle and the unit tests). The composed ("AND") predictor is the λ-weighted sum of the components' ε:
//     ε_λ(x_t, t) = Σ_i λ_i ε_i(x_t, t)   ⇔   s_λ = Σ_i λ_i s_i   (s = −ε / sqrt(1 − ᾱ_t)),
// which for Σλ = 1 is the score of the normalised product Π_i p_{i,t}^{λ_i} at every noise level. Components
// are separately trained models, or one conditional model under several classes or prompts (concept composition).
#pragma once
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "diffusion/schedule.h"
#include "data/gmm.h"
#include "eval/sampling.h"

namespace dualign::compose {

// ε prediction at (x_t [B, ...], t [B] int64), shaped like x_t.
using EpsFn = std::function<torch::Tensor(const torch::Tensor& x_t, const torch::Tensor& t)>;

struct Component {
  std::string name;
  EpsFn eps;
};

// ε of a trained model (converts v-prediction outputs with the schedule), unconditional.
EpsFn model_eps(models::ScoreModel& model, const diffusion::NoiseSchedule& schedule);
// ε of a class-conditional model for class `class_id`, with classifier-free guidance w: ε_∅ + w (ε_c − ε_∅), the
// null class ∅ being model.num_classes() (w = 1: the conditional ε alone, one model call).
EpsFn class_eps(models::ScoreModel& model, const diffusion::NoiseSchedule& schedule, int64_t class_id, double guidance);
// ε of a text-conditional model for one prompt: `text` [1, L, D] its encoder hidden states, guided against
// `negative` [1, L, D] (the empty prompt's): ε_∅ + w (ε_p − ε_∅), both in one call on [x; x] (w = 1: ε_p alone).
EpsFn prompt_eps(models::ScoreModel& model, const diffusion::NoiseSchedule& schedule, torch::Tensor text,
                 torch::Tensor negative, double guidance);
// Exact ε of data ~ `gmm` under the forward process of `schedule`: ε = −sqrt(1 − ᾱ_t) ∇log p_t(x_t).
EpsFn gmm_eps(const data::Gmm& gmm, const diffusion::NoiseSchedule& schedule);

// Trained models loaded from checkpoints (files, ckpt dirs or run dirs), frozen. All must share the noise
// schedule (timesteps, betas) and the sample shape; errors name the checkpoint that disagrees.
struct LoadedModels {
  std::vector<eval::TrainedModel> models;
  std::vector<Component> components;  // names: the resolved checkpoint paths' run dirs
  std::vector<int64_t> sample_shape;
  const diffusion::NoiseSchedule& schedule() const { return *models.front().schedule; }
};
LoadedModels load_models(const std::vector<std::string>& checkpoints, const torch::Device& device);

// Concepts of one class-conditional model: one component per class of `classes` (>= 2, distinct, each below the
// model's num_classes()), each that class's guided ε (class_eps). Names "class <c>".
LoadedModels load_class_components(const std::string& checkpoint, const std::vector<int64_t>& classes,
                                   double guidance, const torch::Device& device);

// Concepts of one text-conditional model: one component per prompt of a prompts file (data_tools/encode_prompts.py:
// >= 2 prompts and the empty prompt's negative_text_embedding, needed when guidance > 1), each that prompt's guided
// ε (prompt_eps). `model`: a dualign checkpoint (file, ckpt dir, run dir) or a diffusers directory (a pipeline root
// such as Stable Diffusion 1.5, or a UNet dir; the schedule from its scheduler config). Names "prompt <i>: <text>".
LoadedModels load_prompt_components(const std::string& model, const std::string& prompts_file, double guidance,
                                    const torch::Device& device);

// One condition of a conditional model as an unconditional model that predicts ε: the guided ε of a class
// (class_eps) or of one prompt of a prompts file (prompt_eps), with the model's schedule set to predict ε
// (epsilon_schedule). What DDO tilts when its reference is conditional (ddo.condition).
struct Condition {
  int64_t class_id = -1;     // >= 0: a class of a class-conditional dualign checkpoint
  std::string prompts_file;  // or: a data_tools/encode_prompts.py file, for a text-conditional model
  int64_t prompt = 0;        // which prompt of it
  double guidance = 1.0;     // classifier-free guidance w (> 1 needs the null class / the empty prompt's embedding)
};
eval::TrainedModel load_conditioned_model(const std::string& model, const Condition& condition,
                                          const torch::Device& device);

// A class-conditional model seen as an unconditional one: a call without class ids conditions on `class_id`.
// The student of primal (distillation) mode in concept composition, warm-started as the first concept's model;
// distillation trains the whole network.
std::shared_ptr<models::ScoreModel> fixed_class_model(std::shared_ptr<models::ScoreModel> model, int64_t class_id);

// The data mixture a checkpoint was trained on, when its config's data section is `kind: gmm` (else nullopt).
std::optional<data::Gmm> training_gmm(const std::string& checkpoint);

// Σ_i λ_i ε_i for a list of per-component predictions.
torch::Tensor weighted_sum(const std::vector<torch::Tensor>& eps, const std::vector<double>& lambda);

// The composed predictor ε_λ as one EpsFn (evaluates every component).
EpsFn composed_eps(const std::vector<Component>& components, const std::vector<double>& lambda);

// The schedule with prediction = epsilon (composed outputs are ε whatever the components predict).
diffusion::NoiseSchedule epsilon_schedule(const diffusion::NoiseSchedule& schedule);

}  // namespace dualign::compose
