// Token embedding: a gather of rows, and its scatter-add backward by atomics (repeated ids add
// into one row from several blocks; the order of those additions is not fixed).
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
