// A preference_pairs file as data_tools/pickapic_to_h5.py writes it, made in C++ for the data and trainer tests:
// float16 posteriors (mean, log-variance, and those of the flipped image), one text embedding per caption in
// prompt_embedding indexed by prompt_index, and the empty prompt's embedding. Values encode their row so a test
// can tell which rows (and which posterior) it got: winner[i] = i, loser[i] = -i - 1, *_flip = value + 1000,
// log-variances log(0.25) (winner) and log(0.01) (loser), prompt_embedding[p] = p + 1, empty = 0.
#pragma once
#include <torch/torch.h>

#include <cmath>
#include <string>

#include "data/h5.h"
#include "data/h5_tensor.h"
#include "data/schema.h"

namespace dualign::test {

inline constexpr int64_t kRecipeCaptions = 5;  // caption of row i: i % kRecipeCaptions

inline void write_recipe_pairs(const std::string& path, int64_t n, int64_t latent = 2, int64_t text_len = 3,
                               int64_t text_dim = 4) {
  auto f = h5::File::create(path);
  data::write_format_attrs(f, "preference_pairs");
  auto rows = torch::arange(n, torch::kFloat32).view({n, 1, 1, 1}).expand({n, 1, latent, latent});
  const h5::WriteOptions chunked{1, 4};
  auto half = [](const torch::Tensor& t) { return t.to(torch::kHalf).contiguous(); };
  auto like = [&](double v) { return half(torch::full({n, 1, latent, latent}, v)); };
  h5::write_tensor(f, "winner", half(rows), chunked);
  h5::write_tensor(f, "loser", half(-rows - 1), chunked);
  h5::write_tensor(f, "winner_flip", half(rows + 1000), chunked);
  h5::write_tensor(f, "loser_flip", half(-rows - 1 + 1000), chunked);
  h5::write_tensor(f, "winner_logvar", like(std::log(0.25)), chunked);
  h5::write_tensor(f, "winner_flip_logvar", like(std::log(0.25)), chunked);
  h5::write_tensor(f, "loser_logvar", like(std::log(0.01)), chunked);
  h5::write_tensor(f, "loser_flip_logvar", like(std::log(0.01)), chunked);
  auto table = torch::arange(1, kRecipeCaptions + 1, torch::kFloat32).view({kRecipeCaptions, 1, 1});
  h5::write_tensor(f, "prompt_embedding", half(table.expand({kRecipeCaptions, text_len, text_dim})), chunked);
  h5::write_tensor(f, "prompt_index", (torch::arange(n) % kRecipeCaptions).to(torch::kInt), {0, 4});
  h5::write_tensor(f, "empty_prompt_embedding", half(torch::zeros({1, text_len, text_dim})));
}

}  // namespace dualign::test
