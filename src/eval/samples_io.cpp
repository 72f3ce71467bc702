#include "eval/samples_io.h"

#include <filesystem>

#include "data/h5.h"
#include "data/h5_tensor.h"
#include "util/error.h"

namespace dualign::eval {

void write_samples(const std::string& path, const SamplesFile& s) {
  DUALIGN_CHECK(s.samples.defined() && s.samples.dim() >= 2, "samples file {}: samples must be [N, ...], got {}", path,
                s.samples.defined() ? c10::str(s.samples.sizes()) : "undefined");
  const int64_t n = s.samples.size(0);
  DUALIGN_CHECK(!s.class_id.defined() || s.class_id.numel() == n, "samples file {}: class_id needs {} rows", path, n);
  const std::pair<const char*, const torch::Tensor*> index_fields[] = {
      {"prompt_index", &s.prompt_index}, {"image_index", &s.image_index}, {"seed", &s.seed}};
  for (const auto& [name, t] : index_fields)
    DUALIGN_CHECK(!t->defined() || t->numel() == n, "samples file {}: {} needs {} rows, got {}", path, name, n,
                  t->numel());
  DUALIGN_CHECK(s.prompts.empty() || int64_t(s.prompts.size()) == n, "samples file {}: prompt needs {} rows", path, n);
  const std::string tmp = path + ".tmp";
  {
    auto f = h5::File::create(tmp);
    f.set_attr("/", "format", "samples");
    f.set_attr("/", "version", int64_t{1});
    for (const auto& [k, v] : s.text_attrs) f.set_attr("/", k, v);
    for (const auto& [k, v] : s.int_attrs) f.set_attr("/", k, v);
    for (const auto& [k, v] : s.float_attrs) f.set_attr("/", k, v);
    h5::write_tensor(f, "samples", s.samples.detach().to(torch::kCPU, torch::kFloat32).contiguous());
    if (s.class_id.defined()) h5::write_tensor(f, "class_id", s.class_id.to(torch::kCPU, torch::kInt64).contiguous());
    for (const auto& [name, t] : index_fields)
      if (t->defined()) h5::write_tensor(f, name, t->to(torch::kCPU, torch::kInt64).contiguous());
    if (!s.prompts.empty()) f.write_strings("prompt", s.prompts);
    f.close();
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) fail("cannot rename {} to {}: {}", tmp, path, ec.message());
}

SamplesFile read_samples(const std::string& path) {
  auto f = h5::File::open(path);
  auto format = f.try_attr_string("/", "format");
  DUALIGN_CHECK(format && *format == "samples", "{}: expected format 'samples', got '{}'", path,
                format ? *format : "(no format attribute)");
  DUALIGN_CHECK(f.exists("samples"), "{}: no dataset 'samples'", path);
  SamplesFile s;
  s.samples = h5::read_tensor(f, "samples").to(torch::kFloat32);
  if (f.exists("class_id")) s.class_id = h5::read_tensor(f, "class_id").to(torch::kInt64);
  if (f.exists("prompt_index")) s.prompt_index = h5::read_tensor(f, "prompt_index").to(torch::kInt64);
  if (f.exists("image_index")) s.image_index = h5::read_tensor(f, "image_index").to(torch::kInt64);
  if (f.exists("seed")) s.seed = h5::read_tensor(f, "seed").to(torch::kInt64);
  if (f.exists("prompt")) s.prompts = f.read_strings("prompt");
  // Attribute types are not listed by the wrapper: try string, then integer, then float.
  for (const auto& key : f.attr_names("/")) {
    try {
      s.text_attrs[key] = f.attr_string("/", key);
    } catch (const Error&) {
      try {
        s.int_attrs[key] = f.attr_int("/", key);
      } catch (const Error&) {
        s.float_attrs[key] = f.attr_double("/", key);
      }
    }
  }
  return s;
}

Prompts read_prompts(const std::string& path) {
  DUALIGN_CHECK(std::filesystem::exists(path), "prompts file {} does not exist", path);
  auto f = h5::File::open(path);
  for (auto* name : {"text_embedding", "prompt"})
    DUALIGN_CHECK(f.exists(name), "prompts file {}: missing dataset '{}' (expected text_embedding [P, L, D] and prompt [P])",
                  path, name);
  Prompts p;
  p.text_embedding = h5::read_tensor(f, "text_embedding").to(torch::kFloat32);
  p.prompt = f.read_strings("prompt");
  DUALIGN_CHECK(p.text_embedding.dim() == 3, "prompts file {}: text_embedding must be [P, L, D], got {}", path,
                c10::str(p.text_embedding.sizes()));
  DUALIGN_CHECK(int64_t(p.prompt.size()) == p.text_embedding.size(0),
                "prompts file {}: {} prompts but {} text embeddings", path, p.prompt.size(), p.text_embedding.size(0));
  if (f.exists("negative_text_embedding")) {
    p.negative_text_embedding = h5::read_tensor(f, "negative_text_embedding").to(torch::kFloat32);
    const auto& neg = p.negative_text_embedding;
    DUALIGN_CHECK(neg.dim() == 3 && (neg.size(0) == 1 || neg.size(0) == p.text_embedding.size(0)) &&
                      neg.size(1) == p.text_embedding.size(1) && neg.size(2) == p.text_embedding.size(2),
                  "prompts file {}: negative_text_embedding must be [1 or {}, {}, {}], got {}", path,
                  p.text_embedding.size(0), p.text_embedding.size(1), p.text_embedding.size(2), c10::str(neg.sizes()));
  }
  if (f.exists("pooled_text_embedding")) {
    p.pooled = h5::read_tensor(f, "pooled_text_embedding").to(torch::kFloat32);
    DUALIGN_CHECK(p.pooled.dim() == 2 && p.pooled.size(0) == p.text_embedding.size(0),
                  "prompts file {}: pooled_text_embedding must be [{}, D], got {}", path, p.text_embedding.size(0),
                  c10::str(p.pooled.sizes()));
  }
  if (f.exists("negative_pooled_text_embedding")) {
    p.negative_pooled = h5::read_tensor(f, "negative_pooled_text_embedding").to(torch::kFloat32);
    const auto& neg = p.negative_pooled;
    DUALIGN_CHECK(p.pooled.defined() && neg.dim() == 2 && (neg.size(0) == 1 || neg.size(0) == p.pooled.size(0)) &&
                      neg.size(1) == p.pooled.size(1),
                  "prompts file {}: negative_pooled_text_embedding must be [1 or {}, {}] beside pooled_text_embedding, "
                  "got {}", path, p.text_embedding.size(0), p.pooled.defined() ? p.pooled.size(1) : 0,
                  c10::str(neg.sizes()));
  }
  return p;
}

}  // namespace dualign::eval
