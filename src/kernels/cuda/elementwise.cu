// Casts, sums, scaling and the reductions that return a host value. Memory-bound grid-stride
// loops; the reductions accumulate in double and wait for their one result.
#include <cuda_fp16.h>

#include "common.cuh"
#include "elementwise_map.cuh"

namespace zt::cuda {

namespace {

__device__ __forceinline__ double to_double(float x) { return x; }
__device__ __forceinline__ double to_double(double x) { return x; }
__device__ __forceinline__ double to_double(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ double to_double(__half x) { return __half2float(x); }
template <class T> __device__ __forceinline__ T from_double(double x);
template <> __device__ __forceinline__ float from_double<float>(double x) { return float(x); }
template <> __device__ __forceinline__ double from_double<double>(double x) { return x; }
// Through float, as the CPU's cast: the same rounding on both.
template <> __device__ __forceinline__ bf16 from_double<bf16>(double x) { return __float2bfloat16_rn(float(x)); }
template <> __device__ __forceinline__ __half from_double<__half>(double x) { return __float2half_rn(float(x)); }

template <class Out, class In>
__global__ void cast_kernel(Out* out, const In* inp, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = from_double<Out>(to_double(inp[i]));
}

// The f32 -> bf16 hot path of mixed precision, four at a time.
__global__ void cast_f32_bf16_kernel(bf16* out, const float* inp, int64_t n) {
  const int64_t n4 = n / 4;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n4; i += int64_t(gridDim.x) * blockDim.x) {
    const float4 v = reinterpret_cast<const float4*>(inp)[i];
    __nv_bfloat162 lo = __floats2bfloat162_rn(v.x, v.y), hi = __floats2bfloat162_rn(v.z, v.w);
    reinterpret_cast<__nv_bfloat162*>(out)[2 * i] = lo;
    reinterpret_cast<__nv_bfloat162*>(out)[2 * i + 1] = hi;
  }
  if (blockIdx.x == 0 && threadIdx.x < n - n4 * 4) out[n4 * 4 + threadIdx.x] = __float2bfloat16_rn(inp[n4 * 4 + threadIdx.x]);
}

template <class Out, class In>
void launch_cast(void* out, const void* inp, int64_t n) {
  cast_kernel<Out, In><<<grid_size(n, 256), 256, 0, compute_stream()>>>(static_cast<Out*>(out),
                                                                        static_cast<const In*>(inp), n);
  ZT_CUDA_CHECK_LAUNCH("cast_kernel");
}

template <class In>
void cast_from(void* out, DType out_dtype, const void* inp, int64_t n) {
  switch (out_dtype) {
    case DType::f32: launch_cast<float, In>(out, inp, n); return;
    case DType::f64: launch_cast<double, In>(out, inp, n); return;
    case DType::bf16: launch_cast<bf16, In>(out, inp, n); return;
    case DType::f16: launch_cast<__half, In>(out, inp, n); return;
    default: ZT_THROW("cast: no CUDA cast into ", dtype_name(out_dtype));
  }
}

struct AddOp {
  __device__ void operator()(const float (&x)[2], float (&y)[1]) const { y[0] = x[0] + x[1]; }
};

template <class T>
__global__ void scale_kernel(T* x, float factor, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    x[i] = from_float<T>(to_float(x[i]) * factor);
}

// Sums of a thread's values over the block, in a fixed order (shared holds 32 doubles).
__device__ __forceinline__ double block_sum_double(double s, double* shared) {
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  if ((threadIdx.x & 31) == 0) shared[threadIdx.x >> 5] = s;
  __syncthreads();
  double b = 0;
  for (int w = 0; w < int(blockDim.x >> 5); ++w) b += shared[w];
  return b;
}

// partial[block] = sum of x^2 over the block's share, 16 bytes a thread where x is aligned
// (element by element otherwise); the blocks' sums are added by sum_partials_kernel in block
// order, so the total is the same from run to run.
template <class T>
__global__ void sum_squares_kernel(double* partial, const T* x, int64_t n, bool vectorized) {
  __shared__ double shared[32];
  constexpr int V = Chunk16<T>::n;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x, first = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t chunks = vectorized ? n / V : 0;
  double s = 0;
  for (int64_t c = first; c < chunks; c += stride) {
    Chunk16<T> v;
    v.raw = reinterpret_cast<const uint4*>(x)[c];
#pragma unroll
    for (int e = 0; e < V; ++e) {
      const double d = to_double(v.v[e]);
      s += d * d;
    }
  }
  for (int64_t i = chunks * V + first; i < n; i += stride) {
    const double v = to_double(x[i]);
    s += v * v;
  }
  const double b = block_sum_double(s, shared);
  if (threadIdx.x == 0) partial[blockIdx.x] = b;
}

__global__ void sum_partials_kernel(double* total, const double* partial, int blocks) {
  __shared__ double shared[32];
  double s = 0;
  for (int i = threadIdx.x; i < blocks; i += blockDim.x) s += partial[i];
  const double b = block_sum_double(s, shared);
  if (threadIdx.x == 0) *total = b;
}

// ops::clip_coefficient's arithmetic (the host's) in f64, on the norm sqrt(sum) / denominator,
// divided by denominator: the factor that unscales and clips the gradients in the optimizer's pass.
__global__ void clip_scale_kernel(float* scale, const double* sum_of_squares, double max_norm, double denominator) {
  const double sum = *sum_of_squares;
  if (!isfinite(sum)) {
    *scale = __int_as_float(0x7fc00000);  // NaN: the update that reads it writes nothing
    return;
  }
  double coefficient = 1.0;
  if (max_norm > 0) {
    const double c = max_norm / (sqrt(sum) / denominator + 1e-6);
    coefficient = c < 1.0 ? c : 1.0;
  }
  *scale = float(coefficient / denominator);
}

template <class T>
__global__ void all_finite_kernel(int* not_finite, const T* x, int64_t n) {
  bool bad = false;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    bad |= !isfinite(to_double(x[i]));
  if (__any_sync(0xffffffffu, bad) && (threadIdx.x & 31) == 0) atomicOr(not_finite, 1);
}

template <class T>
__global__ void mse_kernel(double* total, T* dpred, const T* pred, const T* target, int64_t n, double g) {
  __shared__ double partial[32];
  double s = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const double d = to_double(pred[i]) - to_double(target[i]);
    s += d * d;
    if (dpred) dpred[i] = from_double<T>(g * d);
  }
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = s;
  __syncthreads();
  if (threadIdx.x == 0) {
    double b = 0;
    for (int w = 0; w < int(blockDim.x >> 5); ++w) b += partial[w];
    atomicAdd(total, b);
  }
}

template <class Fn>
void by_dtype(DType dtype, const char* op, Fn&& fn) {
  switch (dtype) {
    case DType::f32: fn(float{}); return;
    case DType::f64: fn(double{}); return;
    case DType::bf16: fn(bf16{}); return;
    case DType::f16: fn(__half{}); return;
    default: ZT_THROW(op, ": expected a floating-point tensor, got ", dtype_name(dtype));
  }
}

template <class R>
R read_back(const R* device_value) {
  R host{};
  ZT_CUDA_CHECK(cudaMemcpyAsync(&host, device_value, sizeof(R), cudaMemcpyDeviceToHost, compute_stream()));
  ZT_CUDA_CHECK(cudaStreamSynchronize(compute_stream()));
  return host;
}

// Ranges blockIdx.y, + gridDim.y, ... of ranges ([begin, end) elements of element_size bytes)
// zeroed: each one's bytes split over gridDim.x blocks, 16-byte stores in the aligned middle,
// single bytes at the ends.
__global__ void zero_ranges_kernel(unsigned char* x, int64_t element_size, const int64_t* ranges, int64_t count) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x, t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  for (int64_t r = blockIdx.y; r < count; r += gridDim.y) {
    unsigned char* begin = x + ranges[2 * r] * element_size;
    unsigned char* end = x + ranges[2 * r + 1] * element_size;
    if (end <= begin) continue;
    unsigned char* first = begin + (16 - reinterpret_cast<uintptr_t>(begin) % 16) % 16;
    unsigned char* last = end - reinterpret_cast<uintptr_t>(end) % 16;
    if (first > last) first = last = begin;  // shorter than its alignment: all by bytes below
    uint4* chunks = reinterpret_cast<uint4*>(first);
    for (int64_t i = t; i < (last - first) / 16; i += stride) chunks[i] = make_uint4(0, 0, 0, 0);
    for (unsigned char* p = begin + t; p < first; p += stride) *p = 0;
    for (unsigned char* p = last + t; p < end; p += stride) *p = 0;
  }
}

}  // namespace

void cast(void* out, DType out_dtype, const void* inp, DType inp_dtype, int64_t n) {
  if (n == 0) return;
  if (inp_dtype == DType::f32 && out_dtype == DType::bf16 && reinterpret_cast<uintptr_t>(inp) % 16 == 0 &&
      reinterpret_cast<uintptr_t>(out) % 8 == 0) {
    cast_f32_bf16_kernel<<<grid_size(n / 4 + 1, 256), 256, 0, compute_stream()>>>(static_cast<bf16*>(out),
                                                                                static_cast<const float*>(inp), n);
    ZT_CUDA_CHECK_LAUNCH("cast_f32_bf16_kernel");
    return;
  }
  by_dtype(inp_dtype, "cast", [&](auto zero) { cast_from<decltype(zero)>(out, out_dtype, inp, n); });
}

template <class T>
void add(T* out, const T* a, const T* b, int64_t n) {
  elementwise_map<T, 2, 1>("add", {{out}}, {{a, b}}, n, AddOp());
}

template <class T>
void scale(T* x, double factor, int64_t n) {
  if (n == 0) return;
  scale_kernel<<<grid_size(n, 256), 256, 0, compute_stream()>>>(x, float(factor), n);
  ZT_CUDA_CHECK_LAUNCH("scale_kernel");
}

void zero_ranges(void* x, size_t element_size, const int64_t* ranges, int64_t count) {
  if (count == 0) return;
  // Bytes of each range, 16 a thread where both ends allow it (a range per grid row).
  const unsigned rows = unsigned(std::min<int64_t>(count, 65535));  // the grid's y limit
  zero_ranges_kernel<<<dim3(8, rows), 256, 0, compute_stream()>>>(static_cast<unsigned char*>(x),
                                                                 int64_t(element_size), ranges, count);
  ZT_CUDA_CHECK_LAUNCH("zero_ranges_kernel");
}

void sum_squares_into(double* sum_of_squares, const void* x, DType dtype, int64_t n) {
  if (n == 0) {
    ZT_CUDA_CHECK(cudaMemsetAsync(sum_of_squares, 0, sizeof(double), compute_stream()));
    return;
  }
  const int blocks = grid_size(n, 256);
  Scratch partial(size_t(blocks) * sizeof(double));
  const bool vectorized = reinterpret_cast<uintptr_t>(x) % 16 == 0;
  by_dtype(dtype, "sum_squares", [&](auto zero) {
    using T = decltype(zero);
    sum_squares_kernel<<<blocks, 256, 0, compute_stream()>>>(partial.as<double>(), static_cast<const T*>(x), n,
                                                            vectorized);
  });
  ZT_CUDA_CHECK_LAUNCH("sum_squares_kernel");
  sum_partials_kernel<<<1, 1024, 0, compute_stream()>>>(sum_of_squares, partial.as<double>(), blocks);
  ZT_CUDA_CHECK_LAUNCH("sum_partials_kernel");
}

double sum_squares(const void* x, DType dtype, int64_t n) {
  if (n == 0) return 0.0;
  Scratch total(sizeof(double));
  sum_squares_into(total.as<double>(), x, dtype, n);
  return read_back(total.as<double>());
}

void clip_scale(float* scale, const double* sum_of_squares, double max_norm, double denominator) {
  clip_scale_kernel<<<1, 1, 0, compute_stream()>>>(scale, sum_of_squares, max_norm, denominator);
  ZT_CUDA_CHECK_LAUNCH("clip_scale_kernel");
}

bool all_finite(const void* x, DType dtype, int64_t n) {
  if (n == 0) return true;
  Scratch flag(sizeof(int));
  ZT_CUDA_CHECK(cudaMemsetAsync(flag.as<int>(), 0, sizeof(int), compute_stream()));
  by_dtype(dtype, "all_finite", [&](auto zero) {
    using T = decltype(zero);
    all_finite_kernel<<<grid_size(n, 256), 256, 0, compute_stream()>>>(flag.as<int>(), static_cast<const T*>(x), n);
  });
  ZT_CUDA_CHECK_LAUNCH("all_finite_kernel");
  return read_back(flag.as<int>()) == 0;
}

template <class T>
double mse_loss(T* dpred, const T* pred, const T* target, int64_t n, double dloss) {
  if (n == 0) return 0.0;
  Scratch total(sizeof(double));
  ZT_CUDA_CHECK(cudaMemsetAsync(total.as<double>(), 0, sizeof(double), compute_stream()));
  mse_kernel<<<grid_size(n, 256), 256, 0, compute_stream()>>>(total.as<double>(), dpred, pred, target, n,
                                                              2.0 * dloss / double(n));
  ZT_CUDA_CHECK_LAUNCH("mse_kernel");
  return read_back(total.as<double>()) / double(n);
}

void copy_columns(void* packed, int64_t packed_width, void* part, int64_t width, int64_t col, int64_t n,
                  size_t element_size, bool to_packed) {
  if (n == 0 || width == 0) return;
  char* packed_at = static_cast<char*>(packed) + size_t(col) * element_size;
  const size_t packed_pitch = size_t(packed_width) * element_size, part_pitch = size_t(width) * element_size;
  if (to_packed) {
    ZT_CUDA_CHECK(cudaMemcpy2DAsync(packed_at, packed_pitch, part, part_pitch, part_pitch, size_t(n),
                                    cudaMemcpyDeviceToDevice, compute_stream()));
  } else {
    ZT_CUDA_CHECK(cudaMemcpy2DAsync(part, part_pitch, packed_at, packed_pitch, part_pitch, size_t(n),
                                    cudaMemcpyDeviceToDevice, compute_stream()));
  }
}

#define ZT_INSTANTIATE(T)                                                          \
  template void add<T>(T*, const T*, const T*, int64_t);                           \
  template void scale<T>(T*, double, int64_t);                                     \
  template double mse_loss<T>(T*, const T*, const T*, int64_t, double);
ZT_INSTANTIATE(float)
ZT_INSTANTIATE(bf16)
#undef ZT_INSTANTIATE

}  // namespace zt::cuda
