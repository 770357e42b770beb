#include "mpi_types.hpp"

#include <cstdint>

#include "zt/core/env.hpp"
#include "zt/core/error.hpp"

namespace zt::comm {

MPI_Datatype mpi_datatype(DType dtype) {
  switch (dtype) {
    case DType::f32: return MPI_FLOAT;
    case DType::f64: return MPI_DOUBLE;
    case DType::bf16: case DType::f16: return MPI_UINT16_T;
    case DType::i64: return MPI_INT64_T;
    case DType::i32: return MPI_INT32_T;
    case DType::i8: return MPI_INT8_T;
    case DType::u8: case DType::b8: return MPI_UINT8_T;
  }
  ZT_THROW("dtype ", dtype_name(dtype), " has no MPI type");
}

MPI_Op mpi_reduce_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: case ReduceOp::avg: return MPI_SUM;
    case ReduceOp::max: return MPI_MAX;
    case ReduceOp::min: return MPI_MIN;
  }
  ZT_THROW("reduce op ", int(op), " has no MPI op");
}

size_t mpi_max_chunk() {
  static const size_t chunk = [] {
    const long long v = env_int("ZT_COMM_MPI_MAX_CHUNK", 1LL << 20);
    ZT_CHECK(v > 0 && v <= (1LL << 30), "ZT_COMM_MPI_MAX_CHUNK=", v, " must be in [1, 2^30]");
    return size_t(v);
  }();
  return chunk;
}

bool needs_f32_staging(DType dtype) { return dtype == DType::bf16 || dtype == DType::f16; }

std::unique_ptr<float[]> to_f32(const void* src, DType dtype, size_t n) {
  std::unique_ptr<float[]> out(new float[n]);
  const uint16_t* in = static_cast<const uint16_t*>(src);
  if (dtype == DType::bf16) {
    for (size_t i = 0; i < n; ++i) out[i] = bf16_to_float(in[i]);
  } else {
    ZT_CHECK(dtype == DType::f16, "f32 staging of ", dtype_name(dtype));
    for (size_t i = 0; i < n; ++i) out[i] = f16_to_float(in[i]);
  }
  return out;
}

void from_f32(const float* src, DType dtype, void* dst, size_t n) {
  uint16_t* out = static_cast<uint16_t*>(dst);
  if (dtype == DType::bf16) {
    for (size_t i = 0; i < n; ++i) out[i] = float_to_bf16(src[i]);
  } else {
    ZT_CHECK(dtype == DType::f16, "f32 staging of ", dtype_name(dtype));
    for (size_t i = 0; i < n; ++i) out[i] = float_to_f16(src[i]);
  }
}

namespace {
template <class T>
void divide(void* data, size_t n, int divisor) {
  T* p = static_cast<T*>(data);
  for (size_t i = 0; i < n; ++i) p[i] = T(p[i] / T(divisor));
}
}  // namespace

void divide_in_place(void* data, DType dtype, size_t n, int divisor) {
  switch (dtype) {
    case DType::f32: return divide<float>(data, n, divisor);
    case DType::f64: return divide<double>(data, n, divisor);
    case DType::i64: return divide<int64_t>(data, n, divisor);
    case DType::i32: return divide<int32_t>(data, n, divisor);
    case DType::i8: return divide<int8_t>(data, n, divisor);
    case DType::u8: return divide<uint8_t>(data, n, divisor);
    default: ZT_THROW("avg of ", dtype_name(dtype), " must go through f32 staging");
  }
}

}  // namespace zt::comm
