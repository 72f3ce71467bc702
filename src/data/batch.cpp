#include "data/batch.h"

#include "util/error.h"
#include "util/seed.h"

namespace dualign::data {

Condition Condition::map(const std::function<torch::Tensor(const torch::Tensor&)>& fn) const {
  Condition c;
  for (auto [from, to] : {std::pair{&class_id, &c.class_id}, std::pair{&text, &c.text},
                          std::pair{&text_pooled, &c.text_pooled}, std::pair{&time_ids, &c.time_ids}})
    if (from->defined()) *to = fn(*from);
  return c;
}

Condition Condition::slice(int64_t start, int64_t length) const {
  return map([&](const torch::Tensor& t) { return t.narrow(0, start, length); });
}

Condition Condition::repeat(int64_t times) const {
  return map([times](const torch::Tensor& t) {
    return torch::cat(std::vector<torch::Tensor>(static_cast<size_t>(times), t), 0);
  });
}

Condition Condition::to(const torch::Device& device) const {
  return map([&](const torch::Tensor& t) { return t.to(device); });
}

Condition Condition::select(const torch::Tensor& rows) const {
  return map([&](const torch::Tensor& t) { return t.index_select(0, rows.to(t.device())); });
}

Condition Condition::concat(const Condition& a, const Condition& b) {
  auto cat = [](const torch::Tensor& x, const torch::Tensor& y, const char* part) {
    DUALIGN_CHECK(x.defined() == y.defined(), "concatenating conditions: only one of them has {} (both must "
                                              "condition on the same parts)", part);
    return x.defined() ? torch::cat({x, y}) : torch::Tensor();
  };
  Condition c;
  c.class_id = cat(a.class_id, b.class_id, "class ids");
  c.text = cat(a.text, b.text, "text embeddings");
  c.text_pooled = cat(a.text_pooled, b.text_pooled, "pooled text embeddings");
  c.time_ids = cat(a.time_ids, b.time_ids, "time ids");
  return c;
}

namespace {
torch::Generator stream(const Batch& batch, const char* purpose) {
  return at::make_generator<at::CPUGeneratorImpl>(derive_seed(batch.seed, purpose));
}
}  // namespace

torch::Tensor draw_global_normal(const Batch& batch, const char* purpose, torch::IntArrayRef sample_shape,
                                 const torch::Device& device) {
  std::vector<int64_t> shape{batch.global_size};
  shape.insert(shape.end(), sample_shape.begin(), sample_shape.end());
  auto all = at::normal(0.0, 1.0, shape, stream(batch, purpose));
  return all.narrow(0, batch.offset, batch.local_size()).to(device);
}

torch::Tensor draw_global_int(const Batch& batch, const char* purpose, int64_t high, const torch::Device& device) {
  auto all = at::randint(high, {batch.global_size}, stream(batch, purpose), torch::kInt64);
  return all.narrow(0, batch.offset, batch.local_size()).to(device);
}

}  // namespace dualign::data
