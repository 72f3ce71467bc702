// Files of generated samples (`dualign sample`) and of encoded prompts (input of text-conditional sampling).
//
// format `samples` (version 1):
//   samples       float32 [N, ...]   model-space samples (points, images in [-1, 1], or latents)
//   class_id      int64   [N]        optional: the class each sample was conditioned on
//   prompt        string  [N]        optional: the prompt each sample was conditioned on
//   prompt_index  int64   [N]        optional: row of that prompt in the prompts file
//   image_index   int64   [N]        optional: which of the images of its prompt / class this sample is
//   seed          int64   [N]        optional: the seed of this sample's x_T and sampler noise
//   root attributes: format, version, model (checkpoint file), sampler, steps, eta, seed, plus any extra ones
// (prompt, image_index) or (class_id, image_index) identify a sample across models: data_tools/evaluate_samples.py
// pairs base and tuned samples on them and checks that the seeds agree.
//
// format `prompts` (read here; written by the data_tools prompt encoder): `text_embedding` float32 [P, L, D]
// and `prompt` strings [P], optionally `negative_text_embedding` float32 [1, L, D] (the unconditional branch of
// classifier-free guidance: the empty or a negative prompt). Files without a format attribute are accepted when
// they hold both datasets.
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

namespace dualign::eval {

struct SamplesFile {
  torch::Tensor samples;       // float32 [N, ...]
  torch::Tensor class_id;      // optional int64 [N]
  torch::Tensor prompt_index;  // optional int64 [N]
  torch::Tensor image_index;   // optional int64 [N]
  torch::Tensor seed;          // optional int64 [N]
  std::vector<std::string> prompts;  // optional, N entries
  std::map<std::string, std::string> text_attrs;  // e.g. model, sampler
  std::map<std::string, int64_t> int_attrs;       // e.g. steps, seed
  std::map<std::string, double> float_attrs;      // e.g. eta
};

// Writes `path` (via path.tmp + rename, so a killed run never leaves a half file under the final name).
void write_samples(const std::string& path, const SamplesFile& file);
SamplesFile read_samples(const std::string& path);

struct Prompts {
  torch::Tensor text_embedding;           // float32 [P, L, D]
  std::vector<std::string> prompt;
  torch::Tensor negative_text_embedding;  // optional float32 [1 or P, L, D]
  torch::Tensor pooled;                   // SDXL: pooled_text_embedding float32 [P, D']
  torch::Tensor negative_pooled;          // SDXL: negative_pooled_text_embedding float32 [1 or P, D']
};
Prompts read_prompts(const std::string& path);

}  // namespace dualign::eval
