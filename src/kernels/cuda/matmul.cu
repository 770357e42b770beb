// Matmul with bias and GELU epilogues on cuBLASLt, and its backward. Row-major (N, C) tensors are
// column-major (C, N) to cuBLASLt, so each product below is written transposed:
// out^T (OC, N) = W' (OC, C) inp^T (C, N), with W' = W^T for out_in weights (OC, C).
#include <algorithm>
#include <atomic>
#include <type_traits>

#include "blaslt.hpp"
#include "common.cuh"
#include "gemm_wgmma.hpp"
#include "partial_sums.cuh"
#include "side_work.hpp"
#include "zt/core/env.hpp"

namespace zt::cuda {

using ops::Activation;
using ops::WeightLayout;

namespace {

std::atomic<bool> g_gelu_epilogue{true};
// What the backward queues beside the input gradient's product: set_matmul_side_stream's choice,
// else ZT_MATMUL_SIDE_STREAM's, read at the first backward (so that a bad value is an error there).
std::atomic<bool> g_side_stream_set{false};
std::atomic<SideStreamWork> g_side_stream{SideStreamWork::bias};

SideStreamWork side_stream_work() {
  if (g_side_stream_set) return g_side_stream;
  static const SideStreamWork from_env = side_stream_work_for(env_string("ZT_MATMUL_SIDE_STREAM", "bias"));
  return from_env;
}

// The GELU products on the own GEMM: set_matmul_own_gemm's choice, else ZT_MATMUL_OWN_GEMM's.
std::atomic<int> g_own_gemm{-1};

OwnGemm own_gemm() {
  const int set = g_own_gemm;
  if (set >= 0) return OwnGemm(set);
  static const OwnGemm from_env = own_gemm_for(env_string("ZT_MATMUL_OWN_GEMM", "forward"));
  return from_env;
}

// Queues p on the own GEMM and says true, or says false where the kernel does not take it.
bool wgmma_gemm_where_fits(const WgmmaGemm& p) {
  if (!wgmma_gemm_fits(p)) return false;
  wgmma_gemm(p);
  return true;
}

// out (N, OC) = gelu(inp (N, C) W^T + bias) with its pre-activation, on the own GEMM where it is
// chosen and takes the problem (W (OC, C) out_in is K-major, (C, OC) in_out MN-major); false
// where cuBLASLt is to run it.
template <class T>
bool gelu_product_on_own_gemm(T* out, T* pre_act, const T* inp, const T* weight, const T* bias, int64_t n,
                              int64_t c, int64_t oc, WeightLayout layout) {
  if constexpr (std::is_same_v<T, bf16>) {
    if (own_gemm() == OwnGemm::none) return false;
    WgmmaGemm p;
    p.out = out, p.pre_act = pre_act, p.bias = bias, p.a = inp, p.b = weight;
    p.b_mn_major = layout == WeightLayout::in_out;
    p.m = n, p.n = oc, p.k = c, p.epilogue = WgmmaEpilogue::gelu;
    return wgmma_gemm_where_fits(p);
  }
  return false;
}

// dinp (N, C) = (dpre (N, OCp) W'') * gelu'(pre_gelu), W (C, OCp) in_out (K-major) or (OCp, C)
// out_in (MN-major), on the own GEMM where it is chosen and takes the problem; false where
// cuBLASLt is to run it.
template <class T>
bool dgelu_product_on_own_gemm(T* dinp, const T* dpre, const T* weight, const T* pre_gelu, int64_t n, int64_t c,
                               int64_t ocp, WeightLayout layout) {
  if constexpr (std::is_same_v<T, bf16>) {
    if (own_gemm() != OwnGemm::both) return false;
    WgmmaGemm p;
    p.out = dinp, p.aux = pre_gelu, p.a = dpre, p.b = weight;
    p.b_mn_major = layout == WeightLayout::out_in;
    p.m = n, p.n = c, p.k = ocp, p.epilogue = WgmmaEpilogue::dgelu;
    return wgmma_gemm_where_fits(p);
  }
  return false;
}

// Whether a forward's residual rides on the product's epilogue (ZT_MATMUL_RESIDUAL_EPILOGUE=0: a
// separate add, for comparisons).
bool residual_epilogue() {
  static const bool from_env = env_bool("ZT_MATMUL_RESIDUAL_EPILOGUE", true);
  return from_env;
}

constexpr int kBiasColumns = 256;  // columns per block of the bias-gradient kernel
constexpr int kBiasRows = 128;     // rows per block

// dpre (N, OC, rows ld_dpre apart, zeros in columns [OC, ld_dpre)) = dout * gelu'(pre_act) when
// pre_act is given, else a copy of dout when dpre is given; and partial (row blocks, OC) = each
// row block's column sums of dpre, when partial is given.
template <class T>
__global__ void bias_grad_kernel(T* dpre, int64_t ld_dpre, float* partial, const T* dout, const T* pre_act, int64_t n,
                                 int64_t oc) {
  const int64_t col = int64_t(blockIdx.x) * kBiasColumns + threadIdx.x;
  const int64_t row0 = int64_t(blockIdx.y) * kBiasRows;
  const int64_t rows = row0 + kBiasRows < n ? kBiasRows : n - row0;
  if (col >= oc) {  // padding columns of a padded dpre
    if (dpre && col < ld_dpre)
      for (int64_t r = 0; r < rows; ++r) dpre[(row0 + r) * ld_dpre + col] = from_float<T>(0.0f);
    return;
  }
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

bool aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

// partial (row blocks, OC) = column sums of dout (N, OC) over blocks of 128 rows, reading 16
// bytes a thread: threadIdx.x picks 16 bytes of a row's columns (a warp reads 512 contiguous
// bytes), threadIdx.y one of 8 row phases. OC a multiple of 16 bytes, dout 16-byte aligned.
template <class T>
__global__ void column_sums_kernel(float* partial, const T* dout, int64_t n, int64_t oc) {
  constexpr int kVec = Chunk16<T>::n;
  __shared__ float sums[8][32 * kVec];
  const int64_t col0 = (int64_t(blockIdx.x) * 32 + threadIdx.x) * kVec;
  const int64_t row0 = int64_t(blockIdx.y) * kBiasRows;
  const int64_t rows = row0 + kBiasRows < n ? kBiasRows : n - row0;
  float acc[kVec] = {};
  if (col0 < oc) {
#pragma unroll 4
    for (int64_t r = threadIdx.y; r < rows; r += 8) {
      Chunk16<T> c;
      c.raw = *reinterpret_cast<const uint4*>(dout + (row0 + r) * oc + col0);
#pragma unroll
      for (int i = 0; i < kVec; ++i) acc[i] += to_float(c.v[i]);
    }
  }
#pragma unroll
  for (int i = 0; i < kVec; ++i) sums[threadIdx.y][threadIdx.x * kVec + i] = acc[i];
  __syncthreads();
  for (int t = threadIdx.y * 32 + threadIdx.x; t < 32 * kVec; t += 256) {
    float total = 0;
#pragma unroll
    for (int y = 0; y < 8; ++y) total += sums[y][t];
    const int64_t col = int64_t(blockIdx.x) * 32 * kVec + t;
    if (col < oc) partial[int64_t(blockIdx.y) * oc + col] = total;
  }
}

// cuBLASLt's fast kernels want the contiguous extent of each matrix (and its leading dimension)
// a multiple of 16 bytes. A large product with an OC that is not (a vocabulary of 50257) is
// computed as one with OC padded by zeros (weight rows or columns, bias, gradient columns),
// through copies: a pass over memory each, far less than the unaligned kernels lose (10x).
template <class T>
int64_t padded_width(int64_t n, int64_t oc) {
  constexpr int64_t per16 = 16 / int64_t(sizeof(T));
  if (oc % per16 == 0 || n * oc < (int64_t(1) << 20)) return oc;
  return (oc + per16 - 1) / per16 * per16;
}

// dst (N, ld_dst) = src (N, width) rows ld_src apart, with zeros in columns [width, ld_dst):
// dst's rows are 16-byte aligned and written 16 bytes at a time; src's may be anywhere.
template <class T>
__global__ void pack_rows_kernel(T* dst, int64_t ld_dst, const T* src, int64_t ld_src, int64_t n, int64_t width) {
  constexpr int kVec = Chunk16<T>::n;
  const int64_t chunks = ld_dst / kVec;
  for (int64_t row = blockIdx.y; row < n; row += gridDim.y) {
    const T* s = src + row * ld_src;
    uint4* d = reinterpret_cast<uint4*>(dst + row * ld_dst);
    for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < chunks; k += int64_t(gridDim.x) * blockDim.x) {
      Chunk16<T> c;
#pragma unroll
      for (int i = 0; i < kVec; ++i) c.v[i] = k * kVec + i < width ? s[k * kVec + i] : from_float<T>(0.0f);
      d[k] = c.raw;
    }
  }
}

// dst (N, width) rows ld_dst apart = (or +=, with accumulate) src's first width columns, an
// element a thread: consecutive threads write consecutive elements, which measured faster here
// than 16-byte reads with scattered 2-byte writes when dst's rows are not aligned.
template <class T>
__global__ void unpack_rows_kernel(T* dst, int64_t ld_dst, const T* src, int64_t ld_src, int64_t n, int64_t width,
                                   bool accumulate) {
  for (int64_t row = blockIdx.y; row < n; row += gridDim.y) {
    T* d = dst + row * ld_dst;
    const T* s = src + row * ld_src;
    for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < width; j += int64_t(gridDim.x) * blockDim.x)
      d[j] = accumulate ? from_float<T>(to_float(d[j]) + to_float(s[j])) : s[j];
  }
}

dim3 rows_grid(int64_t n, int64_t chunks) {
  const int64_t x = std::max<int64_t>(1, std::min<int64_t>((chunks + 255) / 256, 1024));
  const int64_t y = std::max<int64_t>(1, std::min<int64_t>({n, 65535, (int64_t(1) << 18) / x}));
  return dim3(unsigned(x), unsigned(y));
}

// Into a buffer with 16-byte aligned rows of ld_dst (zeros past width).
template <class T>
void pack_rows(T* dst, int64_t ld_dst, const T* src, int64_t ld_src, int64_t n, int64_t width) {
  if (n == 0) return;
  pack_rows_kernel<<<rows_grid(n, ld_dst / Chunk16<T>::n), 256, 0, compute_stream()>>>(dst, ld_dst, src, ld_src, n,
                                                                                     width);
  ZT_CUDA_CHECK_LAUNCH("pack_rows_kernel");
}

// Out of a buffer with rows of ld_src.
template <class T>
void unpack_rows(T* dst, int64_t ld_dst, const T* src, int64_t ld_src, int64_t n, int64_t width, bool accumulate) {
  if (n == 0) return;
  unpack_rows_kernel<<<rows_grid(n, width / 4), 256, 0, compute_stream()>>>(
      dst, ld_dst, src, ld_src, n, width, accumulate);
  ZT_CUDA_CHECK_LAUNCH("unpack_rows_kernel");
}

// The weight with OC padded to ocp by zeros: (ocp, C) for out_in, (C, ocp) for in_out.
template <class T>
void pad_weight(T* padded, const T* weight, int64_t c, int64_t oc, int64_t ocp, WeightLayout layout) {
  if (layout == WeightLayout::out_in) {
    ZT_CUDA_CHECK(cudaMemcpyAsync(padded, weight, size_t(oc * c) * sizeof(T), cudaMemcpyDeviceToDevice,
                                  compute_stream()));
    ZT_CUDA_CHECK(cudaMemsetAsync(padded + oc * c, 0, size_t((ocp - oc) * c) * sizeof(T), compute_stream()));
  } else {
    pack_rows(padded, ocp, weight, oc, c, oc);
  }
}

// dweight += (or with overwrite =) the weight gradient of dpre (N, ocp) against inp (N, C); with
// OC padded (ocp > oc), into a padded buffer whose valid part is then added into (or copied to)
// dweight.
template <class T>
void weight_gradient(T* dweight, const T* dpre, const T* inp, int64_t n, int64_t c, int64_t oc, int64_t ocp,
                     WeightLayout layout, bool overwrite) {
  Scratch dweight_buffer(ocp != oc ? size_t(ocp * c) * sizeof(T) : 0);
  T* target = ocp != oc ? dweight_buffer.as<T>() : dweight;
  GemmProblem p;
  p.beta = ocp != oc || overwrite ? 0.0f : 1.0f;
  if (layout == WeightLayout::out_in) {
    // dW (OCp, C) is column-major (C, OCp): += inp^T (C, N) dpre (N, OCp).
    p.m = c, p.n = ocp, p.k = n;
    p.a = inp, p.lda = c;
    p.b = dpre, p.ldb = ocp, p.trans_b = true;
    p.d = target, p.ldd = c;
  } else {
    // dW (C, OCp) is column-major (OCp, C): += dpre^T (OCp, N) inp (N, C).
    p.m = ocp, p.n = c, p.k = n;
    p.a = dpre, p.lda = ocp;
    p.b = inp, p.ldb = c, p.trans_b = true;
    p.d = target, p.ldd = ocp;
  }
  gemm<T>(p);
  if (ocp != oc) {
    if (layout == WeightLayout::out_in) unpack_rows(dweight, oc * c, target, oc * c, 1, oc * c, !overwrite);
    else unpack_rows(dweight, oc, target, ocp, c, oc, !overwrite);
  }
}

}  // namespace

void set_matmul_gelu_epilogue(bool enabled) { g_gelu_epilogue = enabled; }

OwnGemm set_matmul_own_gemm(OwnGemm products) {
  const OwnGemm previous = own_gemm();
  g_own_gemm = int(products);
  return previous;
}

OwnGemm own_gemm_for(const std::string& value) {
  if (value == "0" || value == "off" || value == "none") return OwnGemm::none;
  if (value == "forward") return OwnGemm::forward;
  if (value == "1" || value == "on" || value == "both") return OwnGemm::both;
  ZT_THROW("ZT_MATMUL_OWN_GEMM='", value, "' is not a choice of products for the own GEMM (use 0, forward or 1)");
}

SideStreamWork side_stream_work_for(const std::string& value) {
  if (value == "off") return SideStreamWork::none;
  if (value == "bias") return SideStreamWork::bias;
  if (value == "all") return SideStreamWork::weight_and_bias;
  ZT_THROW("ZT_MATMUL_SIDE_STREAM='", value, "' is not a choice of side-stream work (use off, bias or all)");
}

SideStreamWork set_matmul_side_stream(SideStreamWork work) {
  const SideStreamWork previous = side_stream_work();
  g_side_stream = work, g_side_stream_set = true;
  return previous;
}

template <class T>
void matmul_forward(T* out, T* pre_act, const T* inp, const T* weight, const T* bias, int64_t n, int64_t c,
                    int64_t oc, WeightLayout layout, Activation act, const T* residual) {
  if (n == 0 || oc == 0) return;
  const bool gelu = act == Activation::gelu_tanh;
  if (gelu && gelu_product_on_own_gemm(out, pre_act, inp, weight, bias, n, c, oc, layout)) {
    if (residual) add(out, out, residual, n * oc);
    return;
  }
  const int64_t ocp = padded_width<T>(n, oc);
  Scratch weight_buffer(ocp != oc ? size_t(ocp * c) * sizeof(T) : 0), bias_buffer(ocp != oc && bias ? size_t(ocp) * sizeof(T) : 0);
  if (ocp != oc) {
    pad_weight(weight_buffer.as<T>(), weight, c, oc, ocp, layout);
    weight = weight_buffer.as<T>();
    if (bias) {
      pack_rows(bias_buffer.as<T>(), ocp, bias, oc, 1, oc);
      bias = bias_buffer.as<T>();
    }
  }
  GemmProblem p;
  p.trans_a = layout == WeightLayout::out_in;
  p.m = ocp, p.n = n, p.k = c;
  p.a = weight, p.lda = p.trans_a ? c : ocp;
  p.b = inp, p.ldb = c;
  p.bias = bias;
  // cuBLASLt's GELU epilogue writes the pre-activation as its aux output; it wants the aux
  // leading dimension a multiple of 8 and aligned pointers.
  if (gelu && g_gelu_epilogue && ocp == oc && oc % 8 == 0 && aligned(pre_act, 16) && aligned(out, 16)) {
    p.d = out, p.ldd = oc;
    p.gelu = true, p.aux = pre_act, p.ld_aux = oc;
    gemm<T>(p);
    if (residual) add(out, out, residual, n * oc);
    return;
  }
  T* target = gelu ? pre_act : out;
  Scratch out_buffer(ocp != oc ? size_t(n * ocp) * sizeof(T) : 0);
  p.d = ocp != oc ? out_buffer.as<T>() : target, p.ldd = ocp;
  // The residual read by the product's epilogue (D = A B + bias + C): no pass of its own.
  const bool fused_residual = residual && !gelu && ocp == oc && residual_epilogue();
  if (fused_residual) p.c = residual, p.beta = 1.0f;
  gemm<T>(p);
  if (ocp != oc) unpack_rows(target, oc, out_buffer.as<T>(), ocp, n, oc, false);
  if (gelu) gelu_forward(out, pre_act, n * oc);
  if (residual && !fused_residual) add(out, out, residual, n * oc);
}

template <class T>
void matmul_backward(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight, const T* pre_act,
                     int64_t n, int64_t c, int64_t oc, WeightLayout layout, Activation act, const T* inp_pre_gelu,
                     bool overwrite_dweight) {
  if (n == 0 || oc == 0 || c == 0) return;
  const bool gelu = act == Activation::gelu_tanh;
  // dpre (N, ocp): dout itself, or a buffer when GELU's derivative applies or OC is padded (the
  // padding columns zero). A buffer's kernel also takes the bias gradient's partial column sums.
  const int64_t ocp = padded_width<T>(n, oc);
  const bool buffered = gelu || ocp != oc;
  const unsigned row_blocks = unsigned((n + kBiasRows - 1) / kBiasRows);
  Scratch dpre_buffer(buffered ? size_t(n * ocp) * sizeof(T) : 0);
  Scratch buffered_partial(buffered && dbias ? size_t(row_blocks) * size_t(oc) * sizeof(float) : 0);
  if (buffered && !gelu && !dbias) {
    pack_rows(dpre_buffer.as<T>(), ocp, dout, oc, n, oc);
  } else if (buffered) {
    const dim3 grid(unsigned((ocp + kBiasColumns - 1) / kBiasColumns), row_blocks);
    bias_grad_kernel<<<grid, kBiasColumns, 0, compute_stream()>>>(
        dpre_buffer.as<T>(), ocp, buffered_partial.as<float>(), dout, gelu ? pre_act : nullptr, n, oc);
    ZT_CUDA_CHECK_LAUNCH("bias_grad_kernel");
  }
  const T* dpre = buffered ? dpre_buffer.as<T>() : dout;

  // The bias gradient's column sums (and with weight_and_bias the weight gradient's product) on
  // the side stream, beside the input gradient's product: a pass over memory under a product, or
  // two products sharing the device where one alone leaves it idle (the last wave).
  const SideStreamWork side_work = side_stream_work();
  const bool side_weight = side_work == SideStreamWork::weight_and_bias && dweight;
  SideWork side(side_work != SideStreamWork::none && dinp && (dbias || side_weight));
  Scratch weight_buffer(ocp != oc && dinp ? size_t(ocp * c) * sizeof(T) : 0);
  if (dinp) {
    if (ocp != oc) {
      pad_weight(weight_buffer.as<T>(), weight, c, oc, ocp, layout);
      weight = weight_buffer.as<T>();
    }
    // dinp^T (C, N) = W'' (C, OCp) dpre^T (OCp, N); out_in W (OC, C) is column-major (C, OC) as stored.
    GemmProblem p;
    p.trans_a = layout == WeightLayout::in_out;
    p.m = c, p.n = n, p.k = ocp;
    p.a = weight, p.lda = layout == WeightLayout::out_in ? c : ocp;
    p.b = dpre, p.ldb = ocp;
    p.d = dinp, p.ldd = c;
    // Through the GELU that made inp: the own GEMM where chosen, else cuBLASLt's DGELU epilogue,
    // which multiplies by its derivative at the saved pre-activation (aux leading dimension a
    // multiple of 8, aligned pointers).
    if (!inp_pre_gelu || !dgelu_product_on_own_gemm(dinp, dpre, weight, inp_pre_gelu, n, c, ocp, layout)) {
      const bool fused =
          inp_pre_gelu && g_gelu_epilogue && c % 8 == 0 && aligned(inp_pre_gelu, 16) && aligned(dinp, 16);
      if (fused) p.dgelu = true, p.aux = const_cast<T*>(inp_pre_gelu), p.ld_aux = c;
      gemm<T>(p);
      if (inp_pre_gelu && !fused) gelu_backward(dinp, dinp, inp_pre_gelu, n * c);
    }
  }
  side.run([&] {
    if (dbias && buffered) {
      sum_partials(dbias, static_cast<T*>(nullptr), buffered_partial.as<float>(), int(row_blocks), 1, oc);
    } else if (dbias) {
      Scratch partial(size_t(row_blocks) * size_t(oc) * sizeof(float));
      if (oc % Chunk16<T>::n == 0 && aligned(dout, 16)) {
        const dim3 grid(unsigned((oc + 32 * Chunk16<T>::n - 1) / (32 * Chunk16<T>::n)), row_blocks);
        column_sums_kernel<<<grid, dim3(32, 8), 0, compute_stream()>>>(partial.as<float>(), dout, n, oc);
        ZT_CUDA_CHECK_LAUNCH("column_sums_kernel");
      } else {
        const dim3 grid(unsigned((oc + kBiasColumns - 1) / kBiasColumns), row_blocks);
        const T* no_pre_act = nullptr;
        bias_grad_kernel<<<grid, kBiasColumns, 0, compute_stream()>>>(static_cast<T*>(nullptr), oc,
                                                                      partial.as<float>(), dout, no_pre_act, n, oc);
        ZT_CUDA_CHECK_LAUNCH("bias_grad_kernel");
      }
      sum_partials(dbias, static_cast<T*>(nullptr), partial.as<float>(), int(row_blocks), 1, oc);
    }
    if (side_weight) weight_gradient(dweight, dpre, inp, n, c, oc, ocp, layout, overwrite_dweight);
  });
  if (dweight && !side_weight) weight_gradient(dweight, dpre, inp, n, c, oc, ocp, layout, overwrite_dweight);
  side.join();
}

#define ZT_INSTANTIATE(T)                                                                                   \
  template void matmul_forward<T>(T*, T*, const T*, const T*, const T*, int64_t, int64_t, int64_t,          \
                                  WeightLayout, Activation, const T*);                                      \
  template void matmul_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, int64_t, int64_t,    \
                                   int64_t, WeightLayout, Activation, const T*, bool);
ZT_INSTANTIATE(float)
ZT_INSTANTIATE(bf16)
#undef ZT_INSTANTIATE

}  // namespace zt::cuda
