// Tensor: a dtype, a device, a shape and a view (element offset) into ref-counted Storage.
// Tensors are always contiguous: there are no general strides, so a view is an offset plus a shape.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "zt/core/dtype.hpp"
#include "zt/core/error.hpp"
#include "zt/core/storage.hpp"

namespace zt {

using Shape = std::vector<int64_t>;

int64_t shape_numel(const Shape& shape);
std::string shape_str(const Shape& shape);  // "(2, 3, 4)"

class Tensor {
 public:
  Tensor() = default;  // undefined: holds no storage

  static Tensor empty(const Shape& shape, DType dtype, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype, Device device = Device::cpu());
  // A host tensor holding a copy of values (converted to dtype).
  static Tensor from_floats(const Shape& shape, const std::vector<float>& values, DType dtype = DType::f32);
  static Tensor from_ints(const Shape& shape, const std::vector<int32_t>& values);
  // A view over existing storage (offset in elements of dtype).
  Tensor(std::shared_ptr<Storage> storage, size_t offset, Shape shape, DType dtype);

  bool defined() const { return storage_ != nullptr; }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_ ? storage_->device() : Device::cpu(); }
  const Shape& shape() const { return shape_; }
  int64_t dim() const { return int64_t(shape_.size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype_); }
  size_t offset() const { return offset_; }
  const std::shared_ptr<Storage>& storage() const { return storage_; }

  void* raw() const;  // first byte of this view
  template <class T>
  T* data() const {
    ZT_CHECK(dtype_ == DTypeOf<T>::value, "tensor of dtype ", dtype_name(dtype_), " read as ",
             dtype_name(DTypeOf<T>::value));
    return static_cast<T*>(raw());
  }

  // Views sharing this tensor's storage.
  Tensor view(size_t element_offset, const Shape& shape) const;  // relative to this view
  Tensor reshape(const Shape& shape) const;                      // same numel; one -1 allowed
  Tensor flatten() const { return reshape({numel()}); }
  Tensor slice(int64_t start, int64_t end) const;                // rows [start, end) of dim 0

  // Copies.
  Tensor clone() const;
  Tensor to(Device device) const;
  Tensor to(DType dtype) const;  // host-side conversion between any dtypes (CUDA: via ops::cast)
  // These write the viewed bytes, not the handle, so they work through const references.
  void copy_from(const Tensor& src) const;  // same dtype and numel; any devices
  // As copy_from, but a copy to or from a CUDA tensor is only queued on the compute stream: the
  // host does not wait. The host side should be pinned memory (pageable memory makes the copy
  // wait); it must stay alive, and unread and unwritten by the host, until the stream is past the
  // copy. Work queued later on the stream (another copy, a kernel) sees the result.
  void copy_from_async(const Tensor& src) const;
  void zero_() const;
  void fill_(double value) const;

  // Host element access in double for tests and small reads (any dtype; copies from CUDA).
  double item() const;
  std::vector<float> to_floats() const;

  std::string describe() const;  // "f32 (2, 3) on cpu"

 private:
  std::shared_ptr<Storage> storage_;
  size_t offset_ = 0;  // in elements
  Shape shape_;
  DType dtype_ = DType::f32;
};

// Checks used by ops: a message names the op, the argument and what was expected.
void check_shape(const Tensor& t, const Shape& expected, const char* op, const char* arg);
void check_dtype(const Tensor& t, DType expected, const char* op, const char* arg);
void check_same_device(const Tensor& a, const Tensor& b, const char* op);

}  // namespace zt
