#include "ckpt/checkpoint.h"

#include <fmt/ranges.h>
#include <torch/torch.h>

#include <algorithm>
#include <set>

#include "data/h5.h"
#include "data/h5_tensor.h"
#include "util/error.h"

namespace dualign::ckpt {
namespace {

constexpr const char* kTextGroup = "text";

void check_name(const std::string& what, const std::string& name) {
  DUALIGN_CHECK(!name.empty() && name.front() != '/' && name.back() != '/' && name.find("//") == std::string::npos,
                "checkpoint: invalid {} name '{}'", what, name);
}

// Datasets below `group`, with names relative to it ("a/b" for nested ones).
void collect(const h5::File& f, const std::string& group, const std::string& prefix, std::vector<std::string>& out) {
  for (auto& child : f.list(group)) {
    std::string full = group + "/" + child;
    if (f.is_group(full))
      collect(f, full, prefix + child + "/", out);
    else
      out.push_back(prefix + child);
  }
}

}  // namespace

// ---- writer ---------------------------------------------------------------------------------------------------
CheckpointWriter::CheckpointWriter(const std::string& path)
    : path_(path), file_(std::make_unique<h5::File>(h5::File::create(path))) {
  file_->set_attr("/", "format", kCheckpointFormat);
  file_->set_attr("/", "version", kCheckpointVersion);
}

CheckpointWriter::~CheckpointWriter() = default;

void CheckpointWriter::put_group(const std::string& group, const TensorMap& tensors) {
  check_name("group", group);
  DUALIGN_CHECK(group != kTextGroup, "checkpoint {}: group name '{}' is reserved for texts", path_, group);
  file_->create_group(group);
  for (auto& [name, t] : tensors) put_tensor(group, name, t);
}

void CheckpointWriter::put_tensor(const std::string& group, const std::string& name, const at::Tensor& tensor) {
  check_name("group", group);
  check_name("tensor", name);
  DUALIGN_CHECK(!file_->exists(group + "/" + name), "checkpoint {}: tensor {}/{} written twice", path_, group, name);
  DUALIGN_CHECK(tensor.defined(), "checkpoint {}: tensor {}/{} is undefined", path_, group, name);
  h5::write_tensor(*file_, group + "/" + name, tensor);
}

void CheckpointWriter::set_attr(const std::string& key, const std::string& value) { file_->set_attr("/", key, value); }
void CheckpointWriter::set_attr(const std::string& key, int64_t value) { file_->set_attr("/", key, value); }
void CheckpointWriter::set_attr(const std::string& key, double value) { file_->set_attr("/", key, value); }

void CheckpointWriter::put_text(const std::string& name, const std::string& text) {
  check_name("text", name);
  file_->write_strings(std::string(kTextGroup) + "/" + name, {text});
}

void CheckpointWriter::close() { file_->close(); }

// ---- reader ---------------------------------------------------------------------------------------------------
CheckpointReader::CheckpointReader(const std::string& path)
    : path_(path), file_(std::make_unique<h5::File>(h5::File::open(path))) {
  auto format = file_->try_attr_string("/", "format");
  if (format != std::string(kCheckpointFormat))
    fail("{}: not a dualign checkpoint (root attribute format = '{}')", path, format.value_or("<missing>"));
  int64_t version = file_->attr_int("/", "version");
  if (version != kCheckpointVersion) fail("{}: checkpoint version {} not supported (expected {})", path, version, kCheckpointVersion);
}

CheckpointReader::~CheckpointReader() = default;

std::vector<std::string> CheckpointReader::groups() const {
  std::vector<std::string> out;
  for (auto& name : file_->list("/"))
    if (name != kTextGroup && file_->is_group(name)) out.push_back(name);
  return out;
}

bool CheckpointReader::has_group(const std::string& group) const { return file_->is_group(group); }

std::vector<std::string> CheckpointReader::tensor_names(const std::string& group) const {
  if (!has_group(group)) fail("{}: checkpoint has no group '{}' (groups: {})", path_, group, fmt::join(groups(), ", "));
  std::vector<std::string> out;
  collect(*file_, group, "", out);
  std::sort(out.begin(), out.end());
  return out;
}

TensorMap CheckpointReader::group(const std::string& group) const {
  TensorMap out;
  for (auto& name : tensor_names(group)) out[name] = h5::read_tensor(*file_, group + "/" + name);
  return out;
}

at::Tensor CheckpointReader::tensor(const std::string& group, const std::string& name) const {
  if (!file_->exists(group + "/" + name)) fail("{}: checkpoint has no tensor {}/{}", path_, group, name);
  return h5::read_tensor(*file_, group + "/" + name);
}

void CheckpointReader::load_into(const std::string& group, const TensorMap& targets, bool strict) const {
  auto stored_names = tensor_names(group);
  std::vector<std::string> missing, unexpected, mismatched;
  std::set<std::string> stored(stored_names.begin(), stored_names.end());
  for (auto& [name, target] : targets) {
    if (!stored.count(name)) {
      missing.push_back(name);
      continue;
    }
    auto info = file_->info(group + "/" + name);
    if (info.shape != target.sizes().vec())
      mismatched.push_back(fmt::format("{} (stored {}, expected [{}])", name, info.shape_str(), fmt::join(target.sizes(), ", ")));
  }
  if (strict)
    for (auto& name : stored_names)
      if (!targets.count(name)) unexpected.push_back(name);
  if (!missing.empty() || !unexpected.empty() || !mismatched.empty())
    fail("{}: group '{}' does not match: missing [{}]; unexpected [{}]; wrong shape [{}]", path_, group,
         fmt::join(missing, ", "), fmt::join(unexpected, ", "), fmt::join(mismatched, ", "));
  torch::NoGradGuard no_grad;
  for (auto& [name, target] : targets) {
    auto value = h5::read_tensor(*file_, group + "/" + name);
    if (value.scalar_type() != target.scalar_type())
      fail("{}: tensor {}/{} is {}, expected {}", path_, group, name, c10::toString(value.scalar_type()),
           c10::toString(target.scalar_type()));
    at::Tensor t = target;  // shallow handle: copy_ writes into the caller's storage
    t.copy_(value);
  }
}

bool CheckpointReader::has_attr(const std::string& key) const { return file_->has_attr("/", key); }
std::string CheckpointReader::attr_string(const std::string& key) const { return file_->attr_string("/", key); }
int64_t CheckpointReader::attr_int(const std::string& key) const { return file_->attr_int("/", key); }
double CheckpointReader::attr_double(const std::string& key) const { return file_->attr_double("/", key); }
std::vector<std::string> CheckpointReader::attr_names() const { return file_->attr_names("/"); }

bool CheckpointReader::has_text(const std::string& name) const { return file_->exists(std::string(kTextGroup) + "/" + name); }

std::string CheckpointReader::text(const std::string& name) const {
  if (!has_text(name)) fail("{}: checkpoint has no text '{}'", path_, name);
  return file_->read_strings(std::string(kTextGroup) + "/" + name).at(0);
}

}  // namespace dualign::ckpt
