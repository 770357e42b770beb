#include "zt/core/tensor.hpp"

#include <cstring>
#include <sstream>

#include "memory_backend.hpp"

namespace zt {

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_str(const Shape& shape) {
  std::ostringstream os;
  os << "(";
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << ")";
  return os.str();
}

namespace {

void check_shape_valid(const Shape& shape) {
  for (int64_t d : shape) ZT_CHECK(d >= 0, "negative dimension in shape ", shape_str(shape));
}

double read_element(const void* base, DType dtype, int64_t i) {
  switch (dtype) {
    case DType::f32: return static_cast<const float*>(base)[i];
    case DType::f64: return static_cast<const double*>(base)[i];
    case DType::bf16: return bf16_to_float(static_cast<const uint16_t*>(base)[i]);
    case DType::f16: return f16_to_float(static_cast<const uint16_t*>(base)[i]);
    case DType::i64: return double(static_cast<const int64_t*>(base)[i]);
    case DType::i32: return static_cast<const int32_t*>(base)[i];
    case DType::i8: return static_cast<const int8_t*>(base)[i];
    case DType::u8: case DType::b8: return static_cast<const uint8_t*>(base)[i];
  }
  return 0;
}

void write_element(void* base, DType dtype, int64_t i, double v) {
  switch (dtype) {
    case DType::f32: static_cast<float*>(base)[i] = float(v); break;
    case DType::f64: static_cast<double*>(base)[i] = v; break;
    case DType::bf16: static_cast<uint16_t*>(base)[i] = float_to_bf16(float(v)); break;
    case DType::f16: static_cast<uint16_t*>(base)[i] = float_to_f16(float(v)); break;
    case DType::i64: static_cast<int64_t*>(base)[i] = int64_t(v); break;
    case DType::i32: static_cast<int32_t*>(base)[i] = int32_t(v); break;
    case DType::i8: static_cast<int8_t*>(base)[i] = int8_t(v); break;
    case DType::u8: static_cast<uint8_t*>(base)[i] = uint8_t(v); break;
    case DType::b8: static_cast<uint8_t*>(base)[i] = v != 0 ? 1 : 0; break;
  }
}

}  // namespace

Tensor::Tensor(std::shared_ptr<Storage> storage, size_t offset, Shape shape, DType dtype)
    : storage_(std::move(storage)), offset_(offset), shape_(std::move(shape)), dtype_(dtype) {
  check_shape_valid(shape_);
  ZT_CHECK(storage_ != nullptr, "tensor view over no storage");
  ZT_CHECK((offset_ + size_t(numel())) * dtype_size(dtype_) <= storage_->nbytes(), "view of ",
           shape_str(shape_), " ", dtype_name(dtype_), " at element ", offset_, " overruns its storage of ",
           storage_->nbytes(), " bytes");
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  check_shape_valid(shape);
  auto storage = Storage::allocate(size_t(shape_numel(shape)) * dtype_size(dtype), device);
  return Tensor(std::move(storage), 0, shape, dtype);
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.zero_();
  return t;
}

Tensor Tensor::from_floats(const Shape& shape, const std::vector<float>& values, DType dtype) {
  ZT_CHECK(int64_t(values.size()) == shape_numel(shape), "from_floats: ", values.size(),
           " values for shape ", shape_str(shape));
  Tensor t = empty(shape, dtype);
  for (size_t i = 0; i < values.size(); ++i) write_element(t.raw(), dtype, int64_t(i), values[i]);
  return t;
}

Tensor Tensor::from_ints(const Shape& shape, const std::vector<int32_t>& values) {
  ZT_CHECK(int64_t(values.size()) == shape_numel(shape), "from_ints: ", values.size(), " values for shape ",
           shape_str(shape));
  Tensor t = empty(shape, DType::i32);
  if (!values.empty()) std::memcpy(t.raw(), values.data(), values.size() * sizeof(int32_t));
  return t;
}

int64_t Tensor::size(int64_t d) const {
  const int64_t n = dim();
  const int64_t i = d < 0 ? d + n : d;
  ZT_CHECK(i >= 0 && i < n, "dimension ", d, " out of range for shape ", shape_str(shape_));
  return shape_[size_t(i)];
}

void* Tensor::raw() const {
  ZT_CHECK(defined(), "access to an undefined tensor");
  return static_cast<char*>(storage_->data()) + offset_ * dtype_size(dtype_);
}

Tensor Tensor::view(size_t element_offset, const Shape& shape) const {
  ZT_CHECK(defined(), "view of an undefined tensor");
  return Tensor(storage_, offset_ + element_offset, shape, dtype_);
}

Tensor Tensor::reshape(const Shape& shape) const {
  Shape resolved = shape;
  int64_t known = 1;
  int inferred = -1;
  for (size_t i = 0; i < resolved.size(); ++i) {
    if (resolved[i] == -1) {
      ZT_CHECK(inferred < 0, "reshape to ", shape_str(shape), ": more than one -1");
      inferred = int(i);
    } else {
      known *= resolved[i];
    }
  }
  if (inferred >= 0) {
    ZT_CHECK(known > 0 && numel() % known == 0, "cannot reshape ", shape_str(shape_), " to ", shape_str(shape));
    resolved[size_t(inferred)] = numel() / known;
  }
  ZT_CHECK(shape_numel(resolved) == numel(), "cannot reshape ", shape_str(shape_), " (", numel(),
           " elements) to ", shape_str(shape));
  return Tensor(storage_, offset_, resolved, dtype_);
}

Tensor Tensor::slice(int64_t start, int64_t end) const {
  ZT_CHECK(dim() >= 1 && start >= 0 && start <= end && end <= shape_[0], "slice [", start, ", ", end,
           ") out of range for shape ", shape_str(shape_));
  Shape s = shape_;
  s[0] = end - start;
  const int64_t row = shape_[0] ? numel() / shape_[0] : 0;
  return Tensor(storage_, offset_ + size_t(start * row), s, dtype_);
}

Tensor Tensor::clone() const {
  Tensor t = empty(shape_, dtype_, device());
  t.copy_from(*this);
  return t;
}

Tensor Tensor::to(Device target) const {
  if (target == device()) return *this;
  Tensor t = empty(shape_, dtype_, target);
  t.copy_from(*this);
  return t;
}

Tensor Tensor::to(DType target) const {
  if (target == dtype_) return *this;
  const Tensor host = to(Device::cpu());
  Tensor out = empty(shape_, target);
  const int64_t n = numel();
  if (target == DType::bf16 && dtype_ == DType::f32) {
    const float* src = host.data<float>();
    auto* dst = static_cast<uint16_t*>(out.raw());
    for (int64_t i = 0; i < n; ++i) dst[i] = float_to_bf16(src[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) write_element(out.raw(), target, i, read_element(host.raw(), dtype_, i));
  }
  return out.to(device());
}

void Tensor::copy_from(const Tensor& src) const {
  ZT_CHECK(defined() && src.defined(), "copy between undefined tensors");
  ZT_CHECK(dtype_ == src.dtype_ && numel() == src.numel(), "copy_from: cannot copy ", src.describe(), " into ",
           describe());
  if (nbytes() == 0) return;
  if (device().is_cpu() && src.device().is_cpu()) {
    std::memmove(raw(), src.raw(), nbytes());
  } else {
    detail::cuda_copy(raw(), device().is_cuda(), src.raw(), src.device().is_cuda(), nbytes());
  }
}

void Tensor::copy_from_async(const Tensor& src) const {
  ZT_CHECK(defined() && src.defined(), "copy between undefined tensors");
  ZT_CHECK(dtype_ == src.dtype_ && numel() == src.numel(), "copy_from_async: cannot copy ", src.describe(), " into ",
           describe());
  if (nbytes() == 0) return;
  if (device().is_cpu() && src.device().is_cpu()) {
    std::memmove(raw(), src.raw(), nbytes());
  } else {
    detail::cuda_copy_async(raw(), src.raw(), nbytes());
  }
}

void Tensor::zero_() const {
  if (nbytes() == 0) return;
  if (device().is_cpu()) std::memset(raw(), 0, nbytes());
  else detail::cuda_memset_zero(raw(), nbytes());
}

void Tensor::fill_(double value) const {
  if (device().is_cuda()) {
    Tensor host = empty(shape_, dtype_);
    host.fill_(value);
    copy_from(host);
    return;
  }
  const int64_t n = numel();
  for (int64_t i = 0; i < n; ++i) write_element(raw(), dtype_, i, value);
}

double Tensor::item() const {
  ZT_CHECK(numel() == 1, "item() of a tensor with ", numel(), " elements ", shape_str(shape_));
  const Tensor host = to(Device::cpu());
  return read_element(host.raw(), dtype_, 0);
}

std::vector<float> Tensor::to_floats() const {
  const Tensor host = to(Device::cpu());
  std::vector<float> out(static_cast<size_t>(numel()));
  for (int64_t i = 0; i < numel(); ++i) out[size_t(i)] = float(read_element(host.raw(), dtype_, i));
  return out;
}

std::string Tensor::describe() const {
  if (!defined()) return "undefined tensor";
  return str(dtype_name(dtype_), " ", shape_str(shape_), " on ", device().name());
}

void check_shape(const Tensor& t, const Shape& expected, const char* op, const char* arg) {
  ZT_CHECK(t.defined(), op, ": ", arg, " is undefined (expected shape ", shape_str(expected), ")");
  ZT_CHECK(t.shape() == expected, op, ": ", arg, " has shape ", shape_str(t.shape()), ", expected ",
           shape_str(expected));
}

void check_dtype(const Tensor& t, DType expected, const char* op, const char* arg) {
  ZT_CHECK(t.dtype() == expected, op, ": ", arg, " has dtype ", dtype_name(t.dtype()), ", expected ",
           dtype_name(expected));
}

void check_same_device(const Tensor& a, const Tensor& b, const char* op) {
  ZT_CHECK(a.device() == b.device(), op, ": tensors on different devices (", a.device().name(), " and ",
           b.device().name(), ")");
}

}  // namespace zt
