// LayerNorm and RMSNorm over the last dimension: a warp per row, statistics in f32. Rows that
// norm_rows.cu covers (whole 16-byte chunks, aligned, not too wide) run there; these kernels take
// the rest. The
// backward's parameter gradients are summed per block in shared memory, then across blocks by
// a second kernel that adds them into dweight/dbias (no global atomics; for rows up to 1024
// wide (LayerNorm) or 2048 (RMSNorm), no atomics at all: the order of the sums is fixed).
#include <algorithm>

#include "common.cuh"
#include "norm_rows.hpp"
#include "partial_sums.cuh"

namespace zt::cuda {

namespace {

constexpr int kWarpsPerBlock = 8;

template <class T>
__global__ void layernorm_forward_kernel(T* out, float* mean, float* rstd, const T* inp, const T* weight,
                                         const T* bias, int64_t n, int64_t c, float eps) {
  const int lane = threadIdx.x & 31;
  const int64_t row = int64_t(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  if (row >= n) return;
  const T* x = inp + row * c;
  float s = 0;
  for (int64_t j = lane; j < c; j += 32) s += to_float(x[j]);
  const float m = warp_sum(s) / float(c);
  float var = 0;
  for (int64_t j = lane; j < c; j += 32) {
    const float d = to_float(x[j]) - m;
    var += d * d;
  }
  const float r = rsqrtf(warp_sum(var) / float(c) + eps);
  T* o = out + row * c;
  for (int64_t j = lane; j < c; j += 32) {
    const float y = (to_float(x[j]) - m) * r * to_float(weight[j]) + (bias ? to_float(bias[j]) : 0.0f);
    o[j] = from_float<T>(y);
  }
  if (lane == 0) mean[row] = m, rstd[row] = r;
}

// partial (gridDim.x, 2, C): this block's sums of dy * xhat and dy over its rows. With
// warp_private, each warp sums into its own (2, C) slice of shared memory (plain adds, combined at
// the end); otherwise (wide rows) all warps add into one slice with shared atomics.
template <class T>
__global__ void layernorm_backward_kernel(T* dinp, float* partial, const T* dout, const T* inp, const T* weight,
                                          const float* mean, const float* rstd, int64_t n, int64_t c,
                                          bool warp_private) {
  extern __shared__ float sums[];  // (warp_private ? warps : 1, 2, C)
  const int slices = warp_private ? kWarpsPerBlock : 1;
  for (int64_t j = threadIdx.x; j < slices * 2 * c; j += blockDim.x) sums[j] = 0.0f;
  __syncthreads();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float* mine = sums + (warp_private ? int64_t(warp) * 2 * c : 0);
  for (int64_t row = int64_t(blockIdx.x) * kWarpsPerBlock + warp; row < n; row += int64_t(gridDim.x) * kWarpsPerBlock) {
    const T* x = inp + row * c;
    const T* dy = dout + row * c;
    const float m = mean[row], r = rstd[row];
    float mean_dxhat = 0, mean_dxhat_xhat = 0;
    for (int64_t j = lane; j < c; j += 32) {
      const float xhat = (to_float(x[j]) - m) * r, g = to_float(dy[j]);
      const float dxhat = g * to_float(weight[j]);
      mean_dxhat += dxhat;
      mean_dxhat_xhat += dxhat * xhat;
      if (warp_private) {
        mine[j] += g * xhat;
        mine[c + j] += g;
      } else {
        atomicAdd(&mine[j], g * xhat);
        atomicAdd(&mine[c + j], g);
      }
    }
    mean_dxhat = warp_sum(mean_dxhat) / float(c);
    mean_dxhat_xhat = warp_sum(mean_dxhat_xhat) / float(c);
    if (!dinp) continue;
    T* dx = dinp + row * c;
    for (int64_t j = lane; j < c; j += 32) {
      const float xhat = (to_float(x[j]) - m) * r;
      const float dxhat = to_float(dy[j]) * to_float(weight[j]);
      dx[j] = from_float<T>(r * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat));
    }
  }
  __syncthreads();
  float* out = partial + int64_t(blockIdx.x) * 2 * c;
  for (int64_t j = threadIdx.x; j < 2 * c; j += blockDim.x) {
    float total = 0;
    for (int w = 0; w < slices; ++w) total += sums[w * 2 * c + j];
    out[j] = total;
  }
}

template <class T>
__global__ void rmsnorm_forward_kernel(T* out, float* rstd, const T* inp, const T* weight, int64_t n, int64_t c,
                                       float eps) {
  const int lane = threadIdx.x & 31;
  const int64_t row = int64_t(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  if (row >= n) return;
  const T* x = inp + row * c;
  float ms = 0;
  for (int64_t j = lane; j < c; j += 32) {
    const float v = to_float(x[j]);
    ms += v * v;
  }
  const float r = rsqrtf(warp_sum(ms) / float(c) + eps);
  T* o = out + row * c;
  // As the reference: normalize in the storage type, then multiply by the weight.
  for (int64_t j = lane; j < c; j += 32)
    o[j] = from_float<T>(to_float(weight[j]) * to_float(from_float<T>(to_float(x[j]) * r)));
  if (lane == 0) rstd[row] = r;
}

// partial (gridDim.x, 1, C): this block's sums of dy * x * rstd.
template <class T>
__global__ void rmsnorm_backward_kernel(T* dinp, float* partial, const T* dout, const T* inp, const T* weight,
                                        const float* rstd, int64_t n, int64_t c, bool warp_private) {
  extern __shared__ float sums[];  // (warp_private ? warps : 1, C)
  const int slices = warp_private ? kWarpsPerBlock : 1;
  for (int64_t j = threadIdx.x; j < slices * c; j += blockDim.x) sums[j] = 0.0f;
  __syncthreads();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float* mine = sums + (warp_private ? int64_t(warp) * c : 0);
  for (int64_t row = int64_t(blockIdx.x) * kWarpsPerBlock + warp; row < n; row += int64_t(gridDim.x) * kWarpsPerBlock) {
    const T* x = inp + row * c;
    const T* dy = dout + row * c;
    const float r = rstd[row];
    float mean_gx = 0;
    for (int64_t j = lane; j < c; j += 32) {
      const float xv = to_float(x[j]), g = to_float(dy[j]);
      mean_gx += g * to_float(weight[j]) * xv;
      if (warp_private) mine[j] += g * xv * r;
      else atomicAdd(&mine[j], g * xv * r);
    }
    mean_gx = warp_sum(mean_gx) / float(c);
    if (!dinp) continue;
    T* dx = dinp + row * c;
    for (int64_t j = lane; j < c; j += 32) {
      const float xv = to_float(x[j]);
      const float g = to_float(dy[j]) * to_float(weight[j]);
      dx[j] = from_float<T>(r * (g - xv * r * r * mean_gx));
    }
  }
  __syncthreads();
  float* out = partial + int64_t(blockIdx.x) * c;
  for (int64_t j = threadIdx.x; j < c; j += blockDim.x) {
    float total = 0;
    for (int w = 0; w < slices; ++w) total += sums[w * c + j];
    out[j] = total;
  }
}

unsigned row_blocks(int64_t n) { return unsigned((n + kWarpsPerBlock - 1) / kWarpsPerBlock); }

// Blocks for a backward: enough to fill the device, few enough that the cross-block sum is cheap.
int backward_blocks(int64_t n) {
  const int64_t wanted = (n + kWarpsPerBlock - 1) / kWarpsPerBlock;
  return int(std::min<int64_t>(wanted, int64_t(multiprocessor_count()) * 4));
}

// Per-warp slices of `arrays` sums while they fit in 64 KB of shared memory.
bool warp_private_sums(int64_t c, int arrays) {
  return size_t(kWarpsPerBlock) * size_t(arrays) * size_t(c) * sizeof(float) <= 64 * 1024;
}

template <class Kernel>
void allow_shared(Kernel kernel, size_t bytes) {
  if (bytes > 48 * 1024) ZT_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

}  // namespace

template <class T>
void layernorm_forward(T* out, float* mean, float* rstd, const T* inp, const T* weight, const T* bias, int64_t n,
                       int64_t c, double eps, const T* residual, T* sum) {
  if (n == 0 || layernorm_forward_rows(out, mean, rstd, inp, weight, bias, n, c, eps, residual, sum)) return;
  if (residual) {  // the general kernel after the add
    add<T>(sum, inp, residual, n * c);
    inp = sum;
  }
  layernorm_forward_kernel<<<row_blocks(n), 32 * kWarpsPerBlock, 0, compute_stream()>>>(out, mean, rstd, inp, weight,
                                                                                       bias, n, c, float(eps));
  ZT_CUDA_CHECK_LAUNCH("layernorm_forward_kernel");
}

template <class T>
void layernorm_backward(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight,
                        const float* mean, const float* rstd, int64_t n, int64_t c, const T* dinp_add) {
  if (n == 0 || layernorm_backward_rows(dinp, dweight, dbias, dout, inp, weight, mean, rstd, n, c, dinp_add)) return;
  const int blocks = backward_blocks(n);
  Scratch partial(size_t(blocks) * 2 * size_t(c) * sizeof(float));
  const bool warp_private = warp_private_sums(c, 2);
  const size_t shared = (warp_private ? kWarpsPerBlock : 1) * 2 * size_t(c) * sizeof(float);
  allow_shared(layernorm_backward_kernel<T>, shared);
  layernorm_backward_kernel<<<blocks, 32 * kWarpsPerBlock, shared, compute_stream()>>>(
      dinp, partial.as<float>(), dout, inp, weight, mean, rstd, n, c, warp_private);
  ZT_CUDA_CHECK_LAUNCH("layernorm_backward_kernel");
  if (dinp && dinp_add) add<T>(dinp, dinp, dinp_add, n * c);  // the general kernels' dinp, then the add
  if (!dweight && !dbias) return;
  sum_partials(dweight, dbias, partial.as<float>(), blocks, 2, c);
}

template <class T>
void rmsnorm_forward(T* out, float* rstd, const T* inp, const T* weight, int64_t n, int64_t c, double eps,
                     const T* residual, T* sum) {
  if (n == 0 || rmsnorm_forward_rows(out, rstd, inp, weight, n, c, eps, residual, sum)) return;
  if (residual) {  // the general kernel after the add
    add<T>(sum, inp, residual, n * c);
    inp = sum;
  }
  rmsnorm_forward_kernel<<<row_blocks(n), 32 * kWarpsPerBlock, 0, compute_stream()>>>(out, rstd, inp, weight, n, c,
                                                                                     float(eps));
  ZT_CUDA_CHECK_LAUNCH("rmsnorm_forward_kernel");
}

template <class T>
void rmsnorm_backward(T* dinp, T* dweight, const T* dout, const T* inp, const T* weight, const float* rstd,
                      int64_t n, int64_t c, const T* dinp_add) {
  if (n == 0 || rmsnorm_backward_rows(dinp, dweight, dout, inp, weight, rstd, n, c, dinp_add)) return;
  const int blocks = backward_blocks(n);
  Scratch partial(size_t(blocks) * size_t(c) * sizeof(float));
  const bool warp_private = warp_private_sums(c, 1);
  const size_t shared = (warp_private ? kWarpsPerBlock : 1) * size_t(c) * sizeof(float);
  allow_shared(rmsnorm_backward_kernel<T>, shared);
  rmsnorm_backward_kernel<<<blocks, 32 * kWarpsPerBlock, shared, compute_stream()>>>(
      dinp, partial.as<float>(), dout, inp, weight, rstd, n, c, warp_private);
  ZT_CUDA_CHECK_LAUNCH("rmsnorm_backward_kernel");
  if (dinp && dinp_add) add<T>(dinp, dinp, dinp_add, n * c);  // the general kernels' dinp, then the add
  if (!dweight) return;
  sum_partials(dweight, static_cast<T*>(nullptr), partial.as<float>(), blocks, 1, c);
}

#define ZT_INSTANTIATE(T)                                                                                          \
  template void layernorm_forward<T>(T*, float*, float*, const T*, const T*, const T*, int64_t, int64_t, double,   \
                                     const T*, T*);                                                                \
  template void layernorm_backward<T>(T*, T*, T*, const T*, const T*, const T*, const float*, const float*,        \
                                      int64_t, int64_t, const T*);                                                 \
  template void rmsnorm_forward<T>(T*, float*, const T*, const T*, int64_t, int64_t, double, const T*, T*);        \
  template void rmsnorm_backward<T>(T*, T*, const T*, const T*, const T*, const float*, int64_t, int64_t, const T*);
ZT_INSTANTIATE(float)
ZT_INSTANTIATE(bf16)
#undef ZT_INSTANTIATE

}  // namespace zt::cuda
