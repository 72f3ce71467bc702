// One checkpoint = one HDF5 file: groups of named tensors (model, ema, optimizer, lr_scheduler, dual, rng,
// method, ...), root attributes (step, git_sha, data cursor, ...) and texts (the composed config YAML, stored
// as a dataset because HDF5 attributes are limited to 64 KiB). Layout in src/data/README.md.
#pragma once
#include <ATen/core/Tensor.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace dualign::h5 {
class File;
}

namespace dualign::ckpt {

using TensorMap = std::map<std::string, at::Tensor>;

inline constexpr const char* kCheckpointFormat = "dualign_checkpoint";
inline constexpr int64_t kCheckpointVersion = 1;

class CheckpointWriter {
 public:
  explicit CheckpointWriter(const std::string& path);  // creates (truncates) the file
  ~CheckpointWriter();
  // Stores every tensor of `tensors` as <group>/<name> (copied to CPU; dtype kept, bf16 included).
  void put_group(const std::string& group, const TensorMap& tensors);
  void put_tensor(const std::string& group, const std::string& name, const at::Tensor& tensor);
  void set_attr(const std::string& key, const std::string& value);
  void set_attr(const std::string& key, const char* value) { set_attr(key, std::string(value)); }
  void set_attr(const std::string& key, int64_t value);
  void set_attr(const std::string& key, double value);
  void put_text(const std::string& name, const std::string& text);  // e.g. "config_yaml"
  void close();  // surfaces write errors; the destructor closes silently
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::unique_ptr<h5::File> file_;
};

class CheckpointReader {
 public:
  explicit CheckpointReader(const std::string& path);  // checks the format attribute
  ~CheckpointReader();
  const std::string& path() const { return path_; }

  std::vector<std::string> groups() const;  // top-level tensor groups (texts excluded)
  bool has_group(const std::string& group) const;
  std::vector<std::string> tensor_names(const std::string& group) const;  // relative names, sorted
  TensorMap group(const std::string& group) const;
  at::Tensor tensor(const std::string& group, const std::string& name) const;
  // Copies the stored tensors into `targets` in place (under NoGradGuard, onto each target's device). Every
  // target must be stored with the same shape; with `strict`, stored tensors without a target are an error too.
  // The error lists all missing / unexpected / mis-shaped names.
  void load_into(const std::string& group, const TensorMap& targets, bool strict = true) const;

  bool has_attr(const std::string& key) const;
  std::string attr_string(const std::string& key) const;
  int64_t attr_int(const std::string& key) const;
  double attr_double(const std::string& key) const;
  std::vector<std::string> attr_names() const;
  bool has_text(const std::string& name) const;
  std::string text(const std::string& name) const;

 private:
  std::string path_;
  std::unique_ptr<h5::File> file_;
};

}  // namespace dualign::ckpt
