#include "data/h5_tensor.h"

#include <torch/torch.h>

namespace dualign::h5 {
namespace {

// How a torch dtype is stored: the HDF5 element type and, for reinterpreted types, the torch_dtype attribute.
struct Storage {
  DType dtype;
  at::ScalarType stored_as;  // the tensor is viewed as this type before writing
  const char* tag;           // "" when the HDF5 type is the real type
};

Storage storage_for(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return {DType::f32, t, ""};
    case at::kDouble: return {DType::f64, t, ""};
    case at::kByte: return {DType::u8, t, ""};
    case at::kChar: return {DType::i8, t, ""};
    case at::kShort: return {DType::i16, t, ""};
    case at::kInt: return {DType::i32, t, ""};
    case at::kLong: return {DType::i64, t, ""};
    case at::kBool: return {DType::u8, at::kByte, "bool"};
    case at::kBFloat16: return {DType::u16, at::kUInt16, "bfloat16"};
    case at::kHalf: return {DType::f16, t, ""};
    default: fail("HDF5: cannot store tensors of dtype {}", c10::toString(t));
  }
}

at::ScalarType scalar_type_for(DType t, const std::string& where) {
  switch (t) {
    case DType::f16: return at::kHalf;
    case DType::f32: return at::kFloat;
    case DType::f64: return at::kDouble;
    case DType::u8: return at::kByte;
    case DType::i8: return at::kChar;
    case DType::i16: return at::kShort;
    case DType::i32: return at::kInt;
    case DType::i64: return at::kLong;
    case DType::u16: return at::kUInt16;
    default: fail("{}: dtype {} cannot be read as a tensor", where, dtype_name(t));
  }
}

at::Tensor restore_tag(const File& file, const std::string& name, at::Tensor t) {
  auto tag = file.try_attr_string(name, "torch_dtype");
  if (!tag) return t;
  if (*tag == "bool") return t.to(at::kBool);
  if (*tag == "bfloat16") return t.view(at::kBFloat16);
  if (*tag == "float16") return t.view(at::kHalf);
  fail("{}: unknown torch_dtype attribute '{}'", file.where(name), *tag);
}

}  // namespace

const char* torch_dtype_name(at::ScalarType t) { return c10::toString(t); }

void write_tensor(File& file, const std::string& name, const at::Tensor& tensor, const WriteOptions& options) {
  DUALIGN_CHECK(tensor.defined(), "{}: cannot write an undefined tensor", file.where(name));
  auto st = storage_for(tensor.scalar_type());
  at::Tensor cpu = tensor.detach().to(at::kCPU).contiguous();
  if (st.stored_as != tensor.scalar_type()) cpu = st.tag == std::string("bool") ? cpu.to(at::kByte) : cpu.view(st.stored_as);
  std::vector<int64_t> shape(cpu.sizes().begin(), cpu.sizes().end());
  file.write(name, st.dtype, shape, cpu.data_ptr(), options);
  if (*st.tag) file.set_attr(name, "torch_dtype", std::string(st.tag));
}

at::Tensor read_tensor(const File& file, const std::string& name) {
  auto info = file.info(name);
  auto type = scalar_type_for(info.dtype, file.where(name));
  at::Tensor t = torch::empty(info.shape, torch::TensorOptions().dtype(type));
  file.read(name, info.dtype, t.data_ptr());
  return restore_tag(file, name, t);
}

at::Tensor read_tensor_rows(const File& file, const std::string& name, const std::vector<int64_t>& rows) {
  auto info = file.info(name);
  DUALIGN_CHECK(!info.shape.empty(), "{}: cannot read rows of a scalar dataset", file.where(name));
  for (int64_t r : rows)
    if (r < 0 || r >= info.shape[0]) fail("{}: row {} out of range (dataset has {} rows)", file.where(name), r, info.shape[0]);
  auto type = scalar_type_for(info.dtype, file.where(name));
  auto shape = info.shape;
  shape[0] = static_cast<int64_t>(rows.size());
  at::Tensor t = torch::empty(shape, torch::TensorOptions().dtype(type));
  if (!rows.empty()) file.read_rows(name, info.dtype, rows, t.data_ptr());
  return restore_tag(file, name, t);
}

}  // namespace dualign::h5
