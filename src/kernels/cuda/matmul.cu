// Matmul with bias and GELU epilogues on cuBLASLt, and its backward. Row-major (N, C) tensors are
// column-major (C, N) to cuBLASLt, so each product below is written transposed:
// out^T (OC, N) = W' (OC, C) inp^T (C, N), with W' = W^T for out_in weights (OC, C).
#include <algorithm>
#include <atomic>

#include "blaslt.hpp"
#include "common.cuh"

namespace zt::cuda {

using ops::Activation;
using ops::WeightLayout;

namespace {

std::atomic<bool> g_gelu_epilogue{true};

constexpr int kBiasColumns = 256;  // columns per block of the bias-gradient kernel
constexpr int kBiasRows = 128;     // rows per block

// dpre (N, OC, rows ld_dpre apart) = dout * gelu'(pre_act) when pre_act is given, else a copy of
// dout when dpre is given; and partial (row blocks, OC) = each row block's column sums of dpre,
// when partial is given.
template <class T>
__global__ void bias_grad_kernel(T* dpre, int64_t ld_dpre, float* partial, const T* dout, const T* pre_act, int64_t n,
                                 int64_t oc) {
  const int64_t col = int64_t(blockIdx.x) * kBiasColumns + threadIdx.x;
  if (col >= oc) return;
  const int64_t row0 = int64_t(blockIdx.y) * kBiasRows;
  const int64_t rows = row0 + kBiasRows < n ? kBiasRows : n - row0;
  float s = 0;
#pragma unroll 8
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t i = (row0 + r) * oc + col;
    float g = to_float(dout[i]);
    if (pre_act) {
      g *= gelu_derivative(to_float(pre_act[i]));
      const T rounded = from_float<T>(g);
      g = to_float(rounded);  // the bias sees what the weight gradient sees
      dpre[(row0 + r) * ld_dpre + col] = rounded;
    } else if (dpre) {
      dpre[(row0 + r) * ld_dpre + col] = dout[i];
    }
    s += g;
  }
  if (partial) partial[int64_t(blockIdx.y) * oc + col] = s;
}

template <class T>
__global__ void add_partial_sums_kernel(T* dst, const float* partial, int blocks, int64_t oc) {
  const int64_t col = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (col >= oc) return;
  float s = 0;
  for (int b = 0; b < blocks; ++b) s += partial[int64_t(b) * oc + col];
  dst[col] = from_float<T>(to_float(dst[col]) + s);
}

bool aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

// cuBLASLt's fast kernels want every row 16-byte aligned. A large product whose OC rows are not
// (a vocabulary of 50257) runs through a copy with rows padded to 16 bytes: the copy costs a
// pass over the memory, far less than the unaligned kernels lose.
template <class T>
int64_t padded_width(int64_t n, int64_t oc) {
  constexpr int64_t per16 = 16 / int64_t(sizeof(T));
  if (oc % per16 == 0 || n * oc < (int64_t(1) << 20)) return oc;
  return (oc + per16 - 1) / per16 * per16;
}

// dst (N, width) rows ld_dst apart = src rows ld_src apart. A kernel rather than cudaMemcpy2D,
// which crawls when a pitch is not a multiple of 4 bytes.
template <class T>
__global__ void copy_rows_kernel(T* dst, int64_t ld_dst, const T* src, int64_t ld_src, int64_t n, int64_t width) {
  for (int64_t row = blockIdx.y; row < n; row += gridDim.y) {
    T* d = dst + row * ld_dst;
    const T* s = src + row * ld_src;
    for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < width; j += int64_t(gridDim.x) * blockDim.x)
      d[j] = s[j];
  }
}

template <class T>
void copy_rows(T* dst, int64_t ld_dst, const T* src, int64_t ld_src, int64_t n, int64_t width) {
  const dim3 grid(unsigned(std::min<int64_t>((width + 1023) / 1024, 64)), unsigned(std::min<int64_t>(n, 4096)));
  copy_rows_kernel<<<grid, 256, 0, compute_stream()>>>(dst, ld_dst, src, ld_src, n, width);
  ZT_CUDA_CHECK_LAUNCH("copy_rows_kernel");
}

}  // namespace

void set_matmul_gelu_epilogue(bool enabled) { g_gelu_epilogue = enabled; }

template <class T>
void matmul_forward(T* out, T* pre_act, const T* inp, const T* weight, const T* bias, int64_t n, int64_t c,
                    int64_t oc, WeightLayout layout, Activation act) {
  if (n == 0 || oc == 0) return;
  GemmProblem p;
  p.trans_a = layout == WeightLayout::out_in;
  p.m = oc, p.n = n, p.k = c;
  p.a = weight, p.lda = p.trans_a ? c : oc;
  p.b = inp, p.ldb = c;
  p.bias = bias;
  const bool gelu = act == Activation::gelu_tanh;
  // cuBLASLt's GELU epilogue writes the pre-activation as its aux output; it wants the aux
  // leading dimension a multiple of 8 and aligned pointers.
  if (gelu && g_gelu_epilogue && oc % 8 == 0 && aligned(pre_act, 16) && aligned(out, 16)) {
    p.d = out, p.ldd = oc;
    p.gelu = true, p.aux = pre_act, p.ld_aux = oc;
    gemm<T>(p);
    return;
  }
  T* target = gelu ? pre_act : out;
  const int64_t ld = padded_width<T>(n, oc);
  Scratch padded(ld != oc ? size_t(n * ld) * sizeof(T) : 0);
  p.d = ld != oc ? padded.as<T>() : target, p.ldd = ld;
  gemm<T>(p);
  if (ld != oc) copy_rows(target, oc, padded.as<T>(), ld, n, oc);
  if (gelu) gelu_forward(out, pre_act, n * oc);
}

template <class T>
void matmul_backward(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight, const T* pre_act,
                     int64_t n, int64_t c, int64_t oc, WeightLayout layout, Activation act) {
  if (n == 0 || oc == 0 || c == 0) return;
  const bool gelu = act == Activation::gelu_tanh;
  // dpre (N, OC) with rows ld apart: dout itself, or a buffer when GELU's derivative applies or
  // the rows need padding.
  const int64_t ld = padded_width<T>(n, oc);
  const bool buffered = gelu || ld != oc;
  Scratch dpre_buffer(buffered ? size_t(n * ld) * sizeof(T) : 0);
  const T* dpre = buffered ? dpre_buffer.as<T>() : dout;
  if (buffered || dbias) {
    const unsigned row_blocks = unsigned((n + kBiasRows - 1) / kBiasRows);
    Scratch partial(dbias ? size_t(row_blocks) * size_t(oc) * sizeof(float) : 0);
    if (!gelu && buffered && !dbias) {
      copy_rows(dpre_buffer.as<T>(), ld, dout, oc, n, oc);
    } else {
      const dim3 grid(unsigned((oc + kBiasColumns - 1) / kBiasColumns), row_blocks);
      bias_grad_kernel<<<grid, kBiasColumns, 0, compute_stream()>>>(dpre_buffer.as<T>(), ld, partial.as<float>(), dout,
                                                                    gelu ? pre_act : nullptr, n, oc);
      ZT_CUDA_CHECK_LAUNCH("bias_grad_kernel");
    }
    if (dbias) {
      add_partial_sums_kernel<<<unsigned((oc + 255) / 256), 256, 0, compute_stream()>>>(dbias, partial.as<float>(),
                                                                                      int(row_blocks), oc);
      ZT_CUDA_CHECK_LAUNCH("add_partial_sums_kernel");
    }
  }
  if (dinp) {
    // dinp^T (C, N) = W'' (C, OC) dpre^T (OC, N); out_in W (OC, C) is column-major (C, OC) as stored.
    GemmProblem p;
    p.trans_a = layout == WeightLayout::in_out;
    p.m = c, p.n = n, p.k = oc;
    p.a = weight, p.lda = layout == WeightLayout::out_in ? c : oc;
    p.b = dpre, p.ldb = ld;
    p.d = dinp, p.ldd = c;
    gemm<T>(p);
  }
  if (dweight) {
    GemmProblem p;
    p.beta = 1.0f;
    if (layout == WeightLayout::out_in) {
      // dW (OC, C) is column-major (C, OC): += inp^T (C, N) dpre (N, OC).
      p.m = c, p.n = oc, p.k = n;
      p.a = inp, p.lda = c;
      p.b = dpre, p.ldb = ld, p.trans_b = true;
      p.d = dweight, p.ldd = c;
    } else {
      // dW (C, OC) is column-major (OC, C): += dpre^T (OC, N) inp (N, C).
      p.m = oc, p.n = c, p.k = n;
      p.a = dpre, p.lda = ld;
      p.b = inp, p.ldb = c, p.trans_b = true;
      p.d = dweight, p.ldd = oc;
    }
    gemm<T>(p);
  }
}

#define ZT_INSTANTIATE(T)                                                                                   \
  template void matmul_forward<T>(T*, T*, const T*, const T*, const T*, int64_t, int64_t, int64_t,          \
                                  WeightLayout, Activation);                                                \
  template void matmul_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, int64_t, int64_t,    \
                                   int64_t, WeightLayout, Activation);
ZT_INSTANTIATE(float)
ZT_INSTANTIATE(bf16)
#undef ZT_INSTANTIATE

}  // namespace zt::cuda
