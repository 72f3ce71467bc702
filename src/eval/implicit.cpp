#include "eval/implicit.h"

#include "data/h5.h"
#include "data/h5_tensor.h"
#include "util/error.h"

namespace dualign::eval {
namespace {

torch::Tensor as_model_space(torch::Tensor t) {
  if (t.scalar_type() == torch::kUInt8) return t.to(torch::kFloat32) / 127.5 - 1.0;
  return t.to(torch::kFloat32);
}

torch::Tensor read_rows(const h5::File& f, const std::string& name, int64_t n) {
  std::vector<int64_t> rows(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) rows[size_t(i)] = i;
  return h5::read_tensor_rows(f, name, rows);
}

}  // namespace

PreferencePairs read_preference_pairs(const std::string& path, int64_t max_pairs) {
  auto f = h5::File::open(path);
  auto format = f.try_attr_string("/", "format");
  DUALIGN_CHECK(format && *format == "preference_pairs", "{}: expected an HDF5 file with format 'preference_pairs', got '{}'",
                path, format ? *format : "(no format attribute)");
  for (auto* name : {"winner", "loser"})
    DUALIGN_CHECK(f.exists(name), "{}: preference pairs need dataset '{}'", path, name);
  const auto w_info = f.info("winner"), l_info = f.info("loser");
  DUALIGN_CHECK(w_info.shape == l_info.shape, "{}: winner {} and loser {} differ in shape", path, w_info.shape_str(),
                l_info.shape_str());
  const int64_t n = max_pairs > 0 ? std::min(max_pairs, w_info.rows()) : w_info.rows();
  DUALIGN_CHECK(n > 0, "{}: no pairs", path);
  PreferencePairs p;
  p.winner = as_model_space(read_rows(f, "winner", n));
  p.loser = as_model_space(read_rows(f, "loser", n));
  if (f.exists("class_id")) p.cond.class_id = read_rows(f, "class_id", n).to(torch::kInt64);
  if (f.exists("text_embedding")) p.cond.text = read_rows(f, "text_embedding", n).to(torch::kFloat32);
  if (f.exists("prompt_embedding"))  // one embedding per unique caption (data/formats.h): each pair's row of it
    p.cond.text = h5::read_tensor(f, "prompt_embedding")
                      .index_select(0, read_rows(f, "prompt_index", n).to(torch::kInt64))
                      .to(torch::kFloat32);
  return p;
}

ImplicitAccuracy implicit_accuracy(const Denoiser& policy, const Denoiser& reference,
                                   const diffusion::NoiseSchedule& schedule, const PreferencePairs& pairs,
                                   int64_t t_draws, uint64_t seed, double beta, int64_t batch_size) {
  DUALIGN_CHECK(t_draws >= 1 && batch_size >= 1 && beta > 0, "implicit accuracy: need t_draws, batch_size >= 1, beta > 0");
  DUALIGN_CHECK(pairs.winner.sizes() == pairs.loser.sizes() && pairs.winner.size(0) > 0,
                "implicit accuracy: winner {} and loser {} must have the same non-empty shape",
                c10::str(pairs.winner.sizes()), c10::str(pairs.loser.sizes()));
  torch::NoGradGuard no_grad;
  const int64_t n = pairs.winner.size(0), T = schedule.num_train_timesteps();
  const bool conditional = pairs.cond.class_id.defined() || pairs.cond.text.defined();
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto logits = torch::zeros({n}, torch::kFloat64);
  for (int64_t draw = 0; draw < t_draws; ++draw) {
    // Every draw's t and ε for all pairs first, so results do not depend on the batch size.
    auto t_all = torch::randint(0, T, {n}, gen, torch::kInt64);
    auto eps_all = torch::randn(pairs.winner.sizes(), gen, torch::kFloat32);
    for (int64_t start = 0; start < n; start += batch_size) {
      const int64_t len = std::min(batch_size, n - start);
      auto t = t_all.narrow(0, start, len), eps = eps_all.narrow(0, start, len);
      auto x0 = torch::cat({pairs.winner.narrow(0, start, len), pairs.loser.narrow(0, start, len)}, 0);
      auto e2 = torch::cat({eps, eps}, 0), t2 = torch::cat({t, t}, 0);
      auto cond = conditional ? pairs.cond.slice(start, len).repeat(2) : data::Condition{};
      auto x_t = schedule.add_noise(x0, e2, t2);
      auto target = schedule.target(x0, e2, t2);
      auto mse = [&](const Denoiser& m) { return (m(x_t, t2, cond) - target).to(torch::kFloat64).pow(2).flatten(1).mean(1); };
      auto d = mse(policy) - mse(reference);  // [2·len]: winners then losers
      auto logit = -beta * (d.narrow(0, 0, len) - d.narrow(0, len, len));
      logits.narrow(0, start, len).add_(logit.cpu() / double(t_draws));
    }
  }
  ImplicitAccuracy out;
  out.logits = logits;
  out.accuracy = mean_se((logits > 0).to(torch::kFloat64) + 0.5 * (logits == 0).to(torch::kFloat64));
  out.logit = mean_se(logits);
  return out;
}

}  // namespace dualign::eval
