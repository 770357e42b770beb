// Device helpers shared by the CUDA kernels: conversions between storage types and float, warp
// and block reductions, launch checks, and stream-ordered scratch memory.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <initializer_list>

#include "cuda_ops.hpp"
#include "zt/core/cuda_check.hpp"

// After a launch: a bad configuration surfaces here, with the kernel's name.
#define ZT_CUDA_CHECK_LAUNCH(name) ZT_CUDA_CHECK_MESSAGE(cudaGetLastError(), name)
#define ZT_CUDA_CHECK_MESSAGE(call, name)                                                                   \
  do {                                                                                                      \
    const cudaError_t zt_cuda_status_ = (call);                                                             \
    if (zt_cuda_status_ != cudaSuccess)                                                                     \
      ::zt::detail::throw_error(__FILE__, __LINE__,                                                         \
                                ::zt::str("CUDA launch of ", name, " failed: ", cudaGetErrorString(zt_cuda_status_))); \
  } while (0)

namespace zt::cuda {

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }
template <class T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) { return x; }
template <>
__device__ __forceinline__ bf16 from_float<bf16>(float x) { return __float2bfloat16_rn(x); }
template <>
__device__ __forceinline__ __half from_float<__half>(float x) { return __float2half_rn(x); }

// 16 bytes of T, for vector loads and stores.
template <class T>
union Chunk16 {
  static constexpr int n = 16 / int(sizeof(T));
  uint4 raw;
  T v[n];
};

__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}
__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the total.
// shared holds 32 floats. Contains barriers: every thread of the block must call it.
__device__ __forceinline__ float block_sum(float x, float* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  x = warp_sum(x);
  __syncthreads();
  if (lane == 0) shared[warp] = x;
  __syncthreads();
  x = lane < warps ? shared[lane] : 0.0f;
  return warp_sum(x);
}
__device__ __forceinline__ float block_max(float x, float* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  x = warp_max(x);
  __syncthreads();
  if (lane == 0) shared[warp] = x;
  __syncthreads();
  x = lane < warps ? shared[lane] : -INFINITY;
  return warp_max(x);
}

constexpr float kLog2e = 1.4426950408889634f;

// 2^x in one MUFU.EX2 (exp2f adds a range fix-up for denormal results: three more instructions);
// 2^-inf = 0, which is how masked scores vanish; tiny results flush to zero.
__device__ __forceinline__ float exp2_fast(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// tanh in one MUFU instruction (relative error ~2^-11, under bf16's rounding of a result).
__device__ __forceinline__ float tanh_fast(float x) {
  float y;
  asm("tanh.approx.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as the CPU reference; kFastTanh takes
// tanh_fast for tanhf (for results stored as bf16).
template <bool kFastTanh = false>
__device__ __forceinline__ float gelu_value(float x) {
  const float k = 0.7978845608028654f, u = k * (x + 0.044715f * x * x * x);
  return 0.5f * x * (1.0f + (kFastTanh ? tanh_fast(u) : tanhf(u)));
}
template <bool kFastTanh = false>
__device__ __forceinline__ float gelu_derivative(float x) {
  const float k = 0.7978845608028654f, u = k * (x + 0.044715f * x * x * x);
  const float th = kFastTanh ? tanh_fast(u) : tanhf(u);
  return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * k * (1.0f + 3.0f * 0.044715f * x * x);
}

// Whether every pointer (null ones too) is 16-byte aligned, as vector and TMA accesses need.
inline bool aligned16(std::initializer_list<const void*> pointers) {
  for (const void* p : pointers)
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  return true;
}

// Blocks for a grid-stride loop over n items: enough to fill the device, no more than needed.
int grid_size(int64_t n, int threads);
int multiprocessor_count();

// Device memory for one op's intermediates, from the stream-ordered pool: freed on the compute
// stream after the kernels queued before the destructor, so no waiting.
class Scratch {
 public:
  explicit Scratch(size_t nbytes);
  ~Scratch();
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <class T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }

 private:
  void* ptr_ = nullptr;
};

}  // namespace zt::cuda
