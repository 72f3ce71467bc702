#include "data/batch.h"

#include "util/seed.h"

namespace dualign::data {

Condition Condition::slice(int64_t start, int64_t length) const {
  Condition c;
  if (class_id.defined()) c.class_id = class_id.narrow(0, start, length);
  if (text.defined()) c.text = text.narrow(0, start, length);
  return c;
}

Condition Condition::repeat(int64_t times) const {
  Condition c;
  auto stack = [times](const torch::Tensor& t) {
    return torch::cat(std::vector<torch::Tensor>(static_cast<size_t>(times), t), 0);
  };
  if (class_id.defined()) c.class_id = stack(class_id);
  if (text.defined()) c.text = stack(text);
  return c;
}

Condition Condition::to(const torch::Device& device) const {
  Condition c;
  if (class_id.defined()) c.class_id = class_id.to(device);
  if (text.defined()) c.text = text.to(device);
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
