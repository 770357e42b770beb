// Token embedding: a gather of rows, and its scatter-add backward by atomics (repeated ids add
// into one row from several blocks; the order of those additions is not fixed). In bf16, rows of
// whole aligned 16-byte chunks add 8 values an atomic (sm_90's vector reduction).
#include <type_traits>

#include "common.cuh"

namespace zt::cuda {

namespace {

// out (N, C): block per row, threads over channels.
template <class T>
__global__ void embedding_forward_kernel(T* out, const int32_t* ids, const T* weight, int64_t v, int64_t c,
                                         bool accumulate) {
  const int64_t row = blockIdx.x;
  const int32_t id = ids[row];
  T* o = out + row * c;
  if (id < 0 || id >= v) {
    for (int64_t j = threadIdx.x; j < c; j += blockDim.x) o[j] = from_float<T>(NAN);
    return;
  }
  const T* w = weight + int64_t(id) * c;
  for (int64_t j = threadIdx.x; j < c; j += blockDim.x)
    o[j] = accumulate ? from_float<T>(to_float(o[j]) + to_float(w[j])) : w[j];
}

template <class T>
__global__ void embedding_backward_kernel(T* dweight, const T* dout, const int32_t* ids, int64_t v, int64_t c) {
  const int64_t row = blockIdx.x;
  const int32_t id = ids[row];
  if (id < 0 || id >= v) return;
  T* dw = dweight + int64_t(id) * c;
  const T* dy = dout + row * c;
  for (int64_t j = threadIdx.x; j < c; j += blockDim.x) atomicAdd(dw + j, dy[j]);
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
constexpr bool kVectorReductions = true;
#else
constexpr bool kVectorReductions = false;
#endif

// The same for bf16 rows of `chunks` 16-byte chunks: a thread per chunk of dout (N, chunks).
__global__ void embedding_backward_chunks_kernel(uint4* dweight, const uint4* dout, const int32_t* ids, int64_t n,
                                                 int64_t v, int64_t chunks) {
  const int64_t total = n * chunks;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = i / chunks, k = i - row * chunks;
    const int32_t id = ids[row];
    if (id < 0 || id >= v) continue;
    const uint4 dy = dout[i];
    uint4* dw = dweight + int64_t(id) * chunks + k;
    if constexpr (kVectorReductions) {
      asm volatile("red.global.add.noftz.v4.bf16x2 [%0], {%1, %2, %3, %4};" ::"l"(dw), "r"(dy.x), "r"(dy.y),
                   "r"(dy.z), "r"(dy.w)
                   : "memory");
    } else {
      const auto* pairs = reinterpret_cast<const __nv_bfloat162*>(&dy);
      auto* dst = reinterpret_cast<__nv_bfloat162*>(dw);
#pragma unroll
      for (int p = 0; p < 4; ++p) atomicAdd(dst + p, pairs[p]);
    }
  }
}

bool aligned_chunks(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

int threads_for(int64_t c) { return c >= 512 ? 256 : (c >= 128 ? 128 : 32); }

}  // namespace

template <class T>
void embedding_forward(T* out, const int32_t* ids, const T* weight, int64_t n, int64_t v, int64_t c, bool accumulate) {
  if (n == 0 || c == 0) return;
  embedding_forward_kernel<<<unsigned(n), threads_for(c), 0, compute_stream()>>>(out, ids, weight, v, c, accumulate);
  ZT_CUDA_CHECK_LAUNCH("embedding_forward_kernel");
}

template <class T>
void embedding_backward(T* dweight, const T* dout, const int32_t* ids, int64_t n, int64_t v, int64_t c) {
  if (n == 0 || c == 0) return;
  if constexpr (std::is_same_v<T, bf16>) {
    if (c % 8 == 0 && aligned_chunks(dweight) && aligned_chunks(dout)) {
      const int64_t chunks = c / 8;
      embedding_backward_chunks_kernel<<<grid_size(n * chunks, 256), 256, 0, compute_stream()>>>(
          reinterpret_cast<uint4*>(dweight), reinterpret_cast<const uint4*>(dout), ids, n, v, chunks);
      ZT_CUDA_CHECK_LAUNCH("embedding_backward_chunks_kernel");
      return;
    }
  }
  embedding_backward_kernel<<<unsigned(n), threads_for(c), 0, compute_stream()>>>(dweight, dout, ids, v, c);
  ZT_CUDA_CHECK_LAUNCH("embedding_backward_kernel");
}

#define ZT_INSTANTIATE(T)                                                                                  \
  template void embedding_forward<T>(T*, const int32_t*, const T*, int64_t, int64_t, int64_t, bool);       \
  template void embedding_backward<T>(T*, const T*, const int32_t*, int64_t, int64_t, int64_t);
ZT_INSTANTIATE(float)
ZT_INSTANTIATE(bf16)
#undef ZT_INSTANTIATE

}  // namespace zt::cuda
