// CUDA causal attention (flash: log-sum-exp saved, probabilities recomputed, D = rowsum(dO * O)
// from the forward's output) against the CPU reference, f32 and bf16, MHA and GQA (groups 1 to
// 8), head sizes on and off the tensor-core kernels' list, lengths that do not fill the last
// tile (77, 1000) and long ones (2048), B > 1; every kernel family for bf16: the tensor-core
// kernels (by default and with each of their tuning alternatives, the wgmma backward among them)
// and the simple ones. Each gradient part is checked by norm and row by row; the tensor-core
// kernels must give bitwise the same results run to run (the wgmma backward's dK and dV). Also
// RoPE, alone and inside the backward.
// Letters: B batch, T sequence, NH query heads, NKV key/value heads, HD head size.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "bit_equal.hpp"
#include "cuda_compare.hpp"
#include "error_text.hpp"
#include "kernels/cuda/block_windows.hpp"
#if ZT_HAS_CUDA
#include "kernels/cuda/cuda_ops.hpp"
#endif
#include "zt/kernels/ops.hpp"

namespace zt {
namespace {

using test::bit_equal;

using namespace test;

// (B, NH, T) log-sum-exp of the scaled causal scores, in double.
Tensor reference_lse(const Tensor& qkv, int64_t nh, int64_t nkv) {
  const int64_t b = qkv.size(0), t = qkv.size(1), width = qkv.size(2), hd = width / (nh + 2 * nkv);
  const std::vector<double> x = values(qkv);
  std::vector<float> lse(size_t(b * nh * t));
  const double scale = 1.0 / std::sqrt(double(hd));
  for (int64_t bi = 0; bi < b; ++bi)
    for (int64_t h = 0; h < nh; ++h)
      for (int64_t i = 0; i < t; ++i) {
        const int64_t kh = h / (nh / nkv);
        std::vector<double> s(size_t(i + 1));
        double mx = -INFINITY;
        for (int64_t j = 0; j <= i; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < hd; ++d)
            dot += x[size_t((bi * t + i) * width + h * hd + d)] * x[size_t((bi * t + j) * width + (nh + kh) * hd + d)];
          s[size_t(j)] = dot * scale;
          mx = std::max(mx, s[size_t(j)]);
        }
        double sum = 0;
        for (double v : s) sum += std::exp(v - mx);
        lse[size_t((bi * nh + h) * t + i)] = float(mx + std::log(sum));
      }
  return Tensor::from_floats({b, nh, t}, lse);
}

// Which of our attention kernels run: the tensor-core ones where they apply (as tuned by default
// or with one of their alternatives), or the simple ones everywhere. cuDNN's backward has its own
// test below.
enum class Kernels {
  automatic,
  forward_mma_sync,
  wgmma_3_stages,  // the wgmma forward's other block shapes (FlashAttentionTuning::wgmma_forward_shape)
  wgmma_4_groups,
  forward_64_rows,
  dkv_kv_in_registers,
  one_dkv_block,
  backward_wgmma,  // the HD 64 backward on wgmma (FlashAttentionTuning::backward)
  backward_wgmma_one_block,
  backward_wgmma_1_group,
  backward_wgmma_2_groups,
  backward_wgmma_window,  // the wgmma backward's blocks in windows of 3 key/value heads
  simple
};
int wgmma_shape(Kernels k) {
  switch (k) {
    case Kernels::wgmma_3_stages: return 23;
    case Kernels::wgmma_4_groups: return 42;
    default: return 0;
  }
}
const char* kernels_name(Kernels k) {
  switch (k) {
    case Kernels::automatic: return "tensor cores";
    case Kernels::forward_mma_sync: return "tensor cores, mma.sync forward where wgmma runs";
    case Kernels::wgmma_3_stages: return "tensor cores, wgmma forward staging 3 key tiles";
    case Kernels::wgmma_4_groups: return "tensor cores, wgmma forward of 4 warpgroups";
    case Kernels::forward_64_rows: return "tensor cores, 64-row forward blocks";
    case Kernels::dkv_kv_in_registers: return "tensor cores, dK/dV keeping K, V in registers";
    case Kernels::one_dkv_block: return "tensor cores, one dK/dV block per group";
    case Kernels::backward_wgmma: return "tensor cores, wgmma backward";
    case Kernels::backward_wgmma_one_block: return "tensor cores, wgmma backward, one block per group";
    case Kernels::backward_wgmma_1_group: return "tensor cores, wgmma backward of 1 warpgroup";
    case Kernels::backward_wgmma_2_groups: return "tensor cores, wgmma backward of 2 warpgroups";
    case Kernels::backward_wgmma_window: return "tensor cores, wgmma backward in windows of 3 heads";
    case Kernels::simple: return "simple";
  }
  return "?";
}
// Whether an alternative changes anything for this case (else it would run the default again).
bool wgmma_backward(Kernels k) {
  return k == Kernels::backward_wgmma || k == Kernels::backward_wgmma_one_block ||
         k == Kernels::backward_wgmma_1_group || k == Kernels::backward_wgmma_2_groups ||
         k == Kernels::backward_wgmma_window;
}
// The alternatives that exist only where the wgmma kernels run.
bool wgmma_only(Kernels k) { return k == Kernels::forward_mma_sync || wgmma_shape(k) != 0 || wgmma_backward(k); }
bool applies(Kernels k, int64_t hd, int64_t nh, int64_t nkv) {
#if ZT_HAS_CUDA
  if (k == Kernels::backward_wgmma_one_block) return hd == 64 && cuda::flash_wgmma_runs() && nh != nkv;
  if (wgmma_only(k)) return hd == 64 && cuda::flash_wgmma_runs();
#else
  if (wgmma_only(k)) return false;
#endif
  if (k == Kernels::forward_64_rows || k == Kernels::dkv_kv_in_registers) return hd == 64;
  if (k == Kernels::one_dkv_block) return nh != nkv;
  return true;
}
void use_kernels(Kernels kernels) {
#if ZT_HAS_CUDA
  cuda::set_attention_kernels(kernels == Kernels::simple ? cuda::AttentionKernels::simple
                                                         : cuda::AttentionKernels::flash);
  cuda::FlashAttentionTuning tuning;
  tuning.forward_rows = kernels == Kernels::forward_64_rows ? 64 : 0;
  tuning.forward_mma_sync = kernels == Kernels::forward_mma_sync;
  tuning.wgmma_forward_shape = wgmma_shape(kernels);
  tuning.dkv_kv_in_registers = kernels == Kernels::dkv_kv_in_registers;
  tuning.dkv_splits = kernels == Kernels::one_dkv_block || kernels == Kernels::backward_wgmma_one_block ? 1 : 0;
  tuning.backward = wgmma_backward(kernels) ? cuda::FlashAttentionTuning::Backward::wgmma
                                            : cuda::FlashAttentionTuning::Backward::cudnn;
  tuning.wgmma_backward_groups = kernels == Kernels::backward_wgmma_1_group    ? 1
                                 : kernels == Kernels::backward_wgmma_2_groups ? 2
                                                                               : 0;
  tuning.wgmma_backward_window = kernels == Kernels::backward_wgmma_window ? 3 : 0;
  cuda::set_flash_attention_tuning(tuning);
#endif
}

// The largest error of one row of `width` elements against the reference row, relative to that
// row's norm plus the rows' RMS norm (a row whose exact gradient is ~0, as dQ of the first query,
// is judged against a typical row): a wrong row fails here even where the norm over all rows
// would let it pass.
double worst_row_error(const Tensor& got, const Tensor& want, int64_t width) {
  const std::vector<double> g = host_doubles(got), w = host_doubles(want);
  const size_t rows = w.size() / size_t(width);
  double total = 0;
  for (double x : w) total += x * x;
  const double rms_row = std::sqrt(total / double(rows));
  double worst = 0;
  for (size_t r = 0; r < rows; ++r) {
    double diff = 0, norm = 0;
    for (size_t i = r * size_t(width); i < (r + 1) * size_t(width); ++i)
      diff += (g[i] - w[i]) * (g[i] - w[i]), norm += w[i] * w[i];
    const double err = std::sqrt(diff) / (std::sqrt(norm) + rms_row + 1e-30);
    if (!(err <= worst)) worst = err;  // NaN sticks
  }
  return worst;
}


struct Case {
  int64_t b, t, nh, nkv, hd;
  bool tensor_cores_only;  // long cases: the f32 and simple bf16 runs would add little but time
};
const Case kCases[] = {
    {2, 37, 4, 4, 16, false},     {1, 130, 4, 2, 64, false},   {2, 200, 4, 1, 128, false},
    {1, 64, 2, 2, 64, false},     {2, 257, 6, 2, 64, false},   {1, 96, 2, 1, 40, false},
    {1, 300, 2, 2, 128, false},   {3, 77, 4, 2, 64, false},    {2, 192, 8, 8, 128, false},
    {2, 1000, 4, 1, 128, true},   {2, 1000, 8, 2, 64, true},   {1, 2048, 8, 1, 64, true},
    {1, 2048, 4, 4, 128, true},
};

// The CPU reference of one case, on values every dtype under test holds exactly: out (B, T,
// NH*HD), lse (B, NH, T), and the gradient's query, key and value columns (B*T, NH*HD or NKV*HD).
struct Reference {
  Tensor qkv, dout, out, lse;
  std::vector<Tensor> parts;
};
Reference reference_attention(Rng& rng, const Case& k) {
  const int64_t width = (k.nh + 2 * k.nkv) * k.hd, n = k.b * k.t;
  Reference r;
  r.qkv = host_values({k.b, k.t, width}, DType::bf16, rng, -2.0, 2.0);
  r.dout = host_values({k.b, k.t, k.nh * k.hd}, DType::bf16, rng);
  r.out = Tensor::empty({k.b, k.t, k.nh * k.hd}, DType::f32);
  const Tensor att = Tensor::empty({k.b, k.nh, k.t, k.t}, DType::f32);
  ops::attention_forward(r.out, att, r.qkv, k.nh, k.nkv);
  const Tensor dqkv = Tensor::empty(r.qkv.shape(), DType::f32);
  ops::attention_backward(dqkv, r.dout, r.qkv, r.out, att, k.nh, k.nkv);
  r.lse = reference_lse(r.qkv, k.nh, k.nkv);
  for (const int64_t w : {k.nh * k.hd, k.nkv * k.hd, k.nkv * k.hd})
    r.parts.push_back(Tensor::empty({n, w}, DType::f32));
  ops::unpack_columns(r.parts, dqkv.reshape({n, width}));
  return r;
}

// The query, key and value columns of a device gradient (B, T, (NH + 2*NKV)*HD), on the host.
std::vector<Tensor> gradient_parts(const Tensor& d_dqkv, const Case& k) {
  const int64_t n = k.b * k.t, width = (k.nh + 2 * k.nkv) * k.hd;
  std::vector<Tensor> parts;
  for (const int64_t w : {k.nh * k.hd, k.nkv * k.hd, k.nkv * k.hd})
    parts.push_back(Tensor::empty({n, w}, d_dqkv.dtype()));
  ops::unpack_columns(parts, d_dqkv.to(Device::cpu()).reshape({n, width}));
  return parts;
}

// The device gradient d_dqkv (B, T, (NH + 2*NKV)*HD) against the reference's parts, each part on
// its own: by norm (tol as expect_close's) and row by row.
void expect_gradient_close(const Tensor& d_dqkv, const Reference& ref, const Case& k, DType dtype, double tol,
                           const std::string& family) {
  const std::vector<Tensor> d_parts = gradient_parts(d_dqkv, k);
  const char* names[3] = {"attention_backward.dq", "attention_backward.dk", "attention_backward.dv"};
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(expect_close(names[i] + family, d_parts[size_t(i)], ref.parts[size_t(i)], dtype, tol));
    EXPECT_LT(worst_row_error(d_parts[size_t(i)], ref.parts[size_t(i)], k.hd), dtype == DType::bf16 ? 0.1 : 1e-4)
        << names[i] << ": worst (token, head) row";
  }
}

// The bf16 forward and backward of the case's inputs on the device, with the kernels as set: dqkv.
[[maybe_unused]] Tensor device_gradient(const Reference& ref, const Case& k) {
  const Tensor d_qkv = on_device(ref.qkv, DType::bf16);
  const Tensor d_out = poisoned(ref.out.shape(), DType::bf16);
  const Tensor d_lse = poisoned(ops::attention_saved_shape(Device::cuda(), k.b, k.nh, k.t), DType::f32);
  ops::attention_forward(d_out, d_lse, d_qkv, k.nh, k.nkv);
  const Tensor d_dqkv = poisoned(ref.qkv.shape(), DType::bf16);
  ops::attention_backward(d_dqkv, on_device(ref.dout, DType::bf16), d_qkv, d_out, d_lse, k.nh, k.nkv);
  return d_dqkv;
}

TEST(CudaAttention, ForwardAndBackwardMatchCpu) {
  ZT_REQUIRE_CUDA();
  Rng rng(301);
  for (const Case& k : kCases) {
    const bool tensor_core_size = k.hd == 64 || k.hd == 128;
    const Reference ref = reference_attention(rng, k);
    const Tensor &qkv = ref.qkv, &dout = ref.dout, &out = ref.out, &lse = ref.lse;

    for (DType dtype : {DType::f32, DType::bf16})
      for (Kernels kernels : {Kernels::automatic, Kernels::forward_mma_sync, Kernels::wgmma_3_stages,
                              Kernels::wgmma_4_groups, Kernels::forward_64_rows,
                              Kernels::dkv_kv_in_registers, Kernels::one_dkv_block, Kernels::backward_wgmma,
                              Kernels::backward_wgmma_one_block, Kernels::backward_wgmma_1_group,
                              Kernels::backward_wgmma_2_groups, Kernels::backward_wgmma_window,
                              Kernels::simple}) {
        if (dtype == DType::f32 && kernels != Kernels::automatic) continue;  // f32 always runs the simple ones
        const bool flash = dtype == DType::bf16 && kernels != Kernels::simple && tensor_core_size;
        if (kernels != Kernels::automatic && kernels != Kernels::simple && !flash) continue;  // as automatic
        if (!applies(kernels, k.hd, k.nh, k.nkv)) continue;
        if (k.tensor_cores_only && !flash) continue;
        const std::string name = flash ? kernels_name(kernels) : "simple", family = " (" + name + ")";
        SCOPED_TRACE(testing::Message() << dtype_name(dtype) << " B=" << k.b << " T=" << k.t << " NH=" << k.nh
                                        << " NKV=" << k.nkv << " HD=" << k.hd << " " << name);
        use_kernels(kernels);
        const Tensor d_qkv = on_device(qkv, dtype);
        const Tensor d_out = poisoned({k.b, k.t, k.nh * k.hd}, dtype);
        const Tensor d_lse = poisoned(ops::attention_saved_shape(Device::cuda(), k.b, k.nh, k.t), DType::f32);
        ops::attention_forward(d_out, d_lse, d_qkv, k.nh, k.nkv);
        EXPECT_TRUE(expect_close("attention_forward.out" + family, d_out, out, dtype));
        EXPECT_LT(worst_row_error(d_out, out, k.hd), dtype == DType::bf16 ? 0.05 : 1e-4) << "forward out";
        EXPECT_TRUE(expect_close("attention_forward.lse" + family, d_lse, lse, dtype, 1e-5));

        const Tensor d_dout = on_device(dout, dtype);
        const Tensor d_dqkv = poisoned(qkv.shape(), dtype);
        ops::attention_backward(d_dqkv, d_dout, d_qkv, d_out, d_lse, k.nh, k.nkv);
        // The tensor-core backward rounds P and dS to bf16 for its products, as flash attention does.
        expect_gradient_close(d_dqkv, ref, k, dtype, flash ? 3e-2 : -1, family);

        // Run to run, the same inputs give the same bits (no atomics, a fixed order of sums);
        // the wgmma backward adds dQ across blocks in f32, so there only dK and dV must repeat.
        if (flash) {
          const Tensor again_out = poisoned(d_out.shape(), dtype), again_lse = poisoned(d_lse.shape(), DType::f32);
          ops::attention_forward(again_out, again_lse, d_qkv, k.nh, k.nkv);
          EXPECT_TRUE(bit_equal(again_out, d_out) && bit_equal(again_lse, d_lse)) << "forward repeated";
          const Tensor again = poisoned(qkv.shape(), dtype);
          ops::attention_backward(again, d_dout, d_qkv, d_out, d_lse, k.nh, k.nkv);
          if (wgmma_backward(kernels)) {
            const std::vector<Tensor> first = gradient_parts(d_dqkv, k), second = gradient_parts(again, k);
            EXPECT_TRUE(bit_equal(first[1], second[1]) && bit_equal(first[2], second[2])) << "dK, dV repeated";
          } else {
            EXPECT_TRUE(bit_equal(again, d_dqkv)) << "backward repeated";
          }
        }
      }
  }
  use_kernels(Kernels::automatic);
#if ZT_HAS_CUDA
  cuda::set_attention_kernels(cuda::AttentionKernels::automatic);  // what runs outside this test
#endif
}

// A case cuDNN has no plan for, with cuDNN's reason, in the test's output.
[[maybe_unused]] void print_no_plan(const char* direction, const Case& k, const std::string& why) {
  std::printf("[ cuDNN    ] %s B=%lld T=%lld NH=%lld NKV=%lld HD=%lld: no plan: %s\n", direction, (long long)k.b,
              (long long)k.t, (long long)k.nh, (long long)k.nkv, (long long)k.hd, why.c_str());
}

// cuDNN's fused backward (AttentionKernels::automatic, after our forward) against the CPU
// reference: MHA and GQA, head sizes 64 and 128, lengths that are multiples of 128, of 64 only,
// and of neither (cuDNN 9.15 and older need the graph's padding mask for those). A shape cuDNN
// has no plan for is reported with its reason and skipped; a head size it cannot take (36) must
// still give right gradients, from our kernels.
TEST(CudaAttention, CudnnBackwardMatchesCpu) {
  ZT_REQUIRE_CUDA();
#if ZT_HAS_CUDA
  const std::string probe = cuda::cudnn_attention_backward_support(1, 128, 2, 2, 64);
  if (probe.find("no cuDNN") != std::string::npos) GTEST_SKIP() << probe;
  cuda::FlashAttentionTuning cudnn_backward;  // cuDNN's even where the automatic choice is wgmma
  cudnn_backward.backward = cuda::FlashAttentionTuning::Backward::cudnn;
  cuda::set_flash_attention_tuning(cudnn_backward);
  const Case cases[] = {{2, 256, 4, 4, 64, false},  {2, 256, 8, 2, 64, false},   {2, 320, 8, 2, 64, false},
                        {1, 200, 4, 1, 64, false},  {2, 128, 4, 2, 128, false},  {1, 1024, 4, 4, 64, false},
                        {1, 96, 2, 1, 36, false}};
  Rng rng(303);
  int ran = 0;
  for (const Case& k : cases) {
    SCOPED_TRACE(testing::Message() << "cuDNN backward B=" << k.b << " T=" << k.t << " NH=" << k.nh
                                    << " NKV=" << k.nkv << " HD=" << k.hd);
    const std::string why = cuda::cudnn_attention_backward_support(k.b, k.t, k.nh, k.nkv, k.hd);
    const bool cudnn = why.empty();
    if (!cudnn) print_no_plan("backward", k, why);
    if (k.hd % 8 != 0) {
      EXPECT_FALSE(cudnn) << "head size " << k.hd << " should have no cuDNN plan";
    }
    if (!cudnn && k.hd % 8 == 0) continue;
    const Reference ref = reference_attention(rng, k);
    cuda::set_attention_kernels(cuda::AttentionKernels::automatic);
    const Tensor d_dqkv = device_gradient(ref, k);
    expect_gradient_close(d_dqkv, ref, k, DType::bf16, cudnn ? 3e-2 : -1, cudnn ? " (cuDNN)" : " (fallback)");
    ran += cudnn;
  }
  cuda::set_attention_kernels(cuda::AttentionKernels::automatic);
  cuda::set_flash_attention_tuning({});
  if (ran == 0) GTEST_SKIP() << "cuDNN had a plan for none of the cases: " << probe;
#endif
}

// cuDNN's fused forward (FlashAttentionTuning::Forward::cudnn) against the CPU reference: out and
// the log-sum-exp that every backward reads, then the default backward from that forward's out
// and lse (cuDNN's or the wgmma one, by the shape); MHA and GQA, head sizes 64 and 128, lengths
// that are multiples of 128, of 64 only, and of neither. A shape cuDNN has no plan for is
// reported with its reason, and must still give the right forward, from our kernels.
TEST(CudaAttention, CudnnForwardMatchesCpu) {
  ZT_REQUIRE_CUDA();
#if ZT_HAS_CUDA
  const std::string probe = cuda::cudnn_attention_forward_support(1, 128, 2, 2, 64);
  if (probe.find("no cuDNN") != std::string::npos) GTEST_SKIP() << probe;
  cuda::FlashAttentionTuning cudnn_forward;
  cudnn_forward.forward = cuda::FlashAttentionTuning::Forward::cudnn;
  cuda::set_flash_attention_tuning(cudnn_forward);
  cuda::set_attention_kernels(cuda::AttentionKernels::automatic);
  const Case cases[] = {{2, 256, 4, 4, 64, false}, {2, 256, 8, 2, 64, false}, {2, 320, 8, 2, 64, false},
                        {1, 200, 4, 1, 64, false}, {2, 128, 4, 2, 128, false}, {1, 1024, 4, 4, 64, false},
                        {3, 77, 4, 2, 64, false}};
  Rng rng(305);
  int ran = 0;
  for (const Case& k : cases) {
    SCOPED_TRACE(testing::Message() << "cuDNN forward B=" << k.b << " T=" << k.t << " NH=" << k.nh
                                    << " NKV=" << k.nkv << " HD=" << k.hd);
    const std::string why = cuda::cudnn_attention_forward_support(k.b, k.t, k.nh, k.nkv, k.hd);
    const bool cudnn = why.empty();
    if (!cudnn) print_no_plan("forward", k, why);
    const std::string family = cudnn ? " (cuDNN)" : " (fallback)";
    const Reference ref = reference_attention(rng, k);
    const Tensor d_qkv = on_device(ref.qkv, DType::bf16);
    const Tensor d_out = poisoned(ref.out.shape(), DType::bf16);
    const Tensor d_lse = poisoned(ops::attention_saved_shape(Device::cuda(), k.b, k.nh, k.t), DType::f32);
    ops::attention_forward(d_out, d_lse, d_qkv, k.nh, k.nkv);
    EXPECT_TRUE(expect_close("attention_forward.out" + family, d_out, ref.out, DType::bf16));
    EXPECT_LT(worst_row_error(d_out, ref.out, k.hd), 0.05) << "forward out";
    EXPECT_TRUE(expect_close("attention_forward.lse" + family, d_lse, ref.lse, DType::bf16, 1e-5));
    const Tensor d_dqkv = poisoned(ref.qkv.shape(), DType::bf16);
    ops::attention_backward(d_dqkv, on_device(ref.dout, DType::bf16), d_qkv, d_out, d_lse, k.nh, k.nkv);
    expect_gradient_close(d_dqkv, ref, k, DType::bf16, 3e-2, family + " then the default backward");
    ran += cudnn;
  }
  cuda::set_flash_attention_tuning({});
  if (ran == 0) GTEST_SKIP() << "cuDNN had a plan for none of the cases: " << probe;
#endif
}

// The backward as training runs it (automatic kernels, the default tuning: on Hopper the wgmma
// backward for grouped heads, cuDNN's or ours otherwise) against the CPU.
TEST(CudaAttention, AutomaticBackwardMatchesCpu) {
  ZT_REQUIRE_CUDA();
#if ZT_HAS_CUDA
  const Case cases[] = {{2, 256, 8, 2, 64, false}, {1, 333, 4, 1, 64, false}, {2, 256, 4, 4, 64, false}};
  Rng rng(304);
  cuda::set_attention_kernels(cuda::AttentionKernels::automatic);
  cuda::set_flash_attention_tuning({});
  for (const Case& k : cases) {
    SCOPED_TRACE(testing::Message() << "automatic backward B=" << k.b << " T=" << k.t << " NH=" << k.nh
                                    << " NKV=" << k.nkv);
    const Reference ref = reference_attention(rng, k);
    const Tensor d_dqkv = device_gradient(ref, k);
    expect_gradient_close(d_dqkv, ref, k, DType::bf16, 3e-2, " (automatic)");
  }
#endif
}

// The backward with the rotary embedding's inverse (as Llama trains: ops::RotaryPositions)
// against the CPU's plain backward followed by its rope_backward, for every way it is made: the
// wgmma backward rotating dK and dQ inside its kernels (MHA with one warpgroup, grouped heads
// with two, lengths off the tiles), the wgmma backward with its dK from split partials (rotated
// after them), the other tensor-core kernels (HD 128) and the simple ones (f32, HD 16); offsets
// 0 and 1000 (Llama-length angles).
TEST(CudaAttention, BackwardWithRotaryMatchesCpu) {
  ZT_REQUIRE_CUDA();
  struct RotaryCase {
    Case shape;
    DType dtype;
    int splits;  // FlashAttentionTuning::dkv_splits
    int64_t offset;
  };
  const RotaryCase cases[] = {{{1, 300, 8, 2, 64, false}, DType::bf16, 0, 0},
                              {{2, 256, 4, 4, 64, false}, DType::bf16, 0, 1000},
                              {{3, 77, 4, 2, 64, false}, DType::bf16, 0, 5},
                              {{1, 130, 4, 2, 64, false}, DType::bf16, 2, 1000},
                              {{2, 200, 4, 1, 128, false}, DType::bf16, 0, 1000},
                              {{2, 37, 4, 4, 16, false}, DType::f32, 0, 1000}};
  Rng rng(306);
  for (const RotaryCase& rc : cases) {
    const Case& k = rc.shape;
    SCOPED_TRACE(testing::Message() << dtype_name(rc.dtype) << " B=" << k.b << " T=" << k.t << " NH=" << k.nh
                                    << " NKV=" << k.nkv << " HD=" << k.hd << " splits=" << rc.splits
                                    << " offset=" << rc.offset);
    std::vector<float> inv(size_t(k.hd / 2));
    for (int64_t i = 0; i < k.hd / 2; ++i) inv[size_t(i)] = 1.0f / std::pow(10000.0f, float(2 * i) / float(k.hd));
    const Tensor inv_freq = Tensor::from_floats({k.hd / 2}, inv);
    Reference ref = reference_attention(rng, k);
    ops::rope_backward(ref.parts[0].reshape({k.b, k.t, k.nh, k.hd}), inv_freq, k.nh, rc.offset);
    ops::rope_backward(ref.parts[1].reshape({k.b, k.t, k.nkv, k.hd}), inv_freq, k.nkv, rc.offset);
#if ZT_HAS_CUDA
    cuda::set_attention_kernels(cuda::AttentionKernels::automatic);
    cuda::FlashAttentionTuning tuning;
    tuning.dkv_splits = rc.splits;
    cuda::set_flash_attention_tuning(tuning);
#endif
    const Tensor d_qkv = on_device(ref.qkv, rc.dtype);
    const Tensor d_out = poisoned(ref.out.shape(), rc.dtype);
    const Tensor d_lse = poisoned(ops::attention_saved_shape(Device::cuda(), k.b, k.nh, k.t), DType::f32);
    ops::attention_forward(d_out, d_lse, d_qkv, k.nh, k.nkv);
    const Tensor d_inv_freq = inv_freq.to(Device::cuda());
    const ops::RotaryPositions rotary{d_inv_freq, rc.offset};
    const Tensor d_dqkv = poisoned(ref.qkv.shape(), rc.dtype);
    ops::attention_backward(d_dqkv, on_device(ref.dout, rc.dtype), d_qkv, d_out, d_lse, k.nh, k.nkv, &rotary);
    expect_gradient_close(d_dqkv, ref, k, rc.dtype, rc.dtype == DType::bf16 ? 3e-2 : -1, " (rotated back)");
  }
#if ZT_HAS_CUDA
  cuda::set_flash_attention_tuning({});
#endif
}

// ZT_ATTENTION_BACKWARD's and ZT_ATTENTION_FORWARD's values; a wrong one is an error that names the variable and the value.
TEST(CudaAttention, BackwardChoiceFromTheEnvironment) {
#if ZT_HAS_CUDA
  using Backward = cuda::FlashAttentionTuning::Backward;
  EXPECT_EQ(cuda::flash_attention_tuning_for("wgmma").backward, Backward::wgmma);
  EXPECT_EQ(cuda::flash_attention_tuning_for("cudnn").backward, Backward::cudnn);
  EXPECT_EQ(cuda::flash_attention_tuning_for("auto").backward, Backward::automatic);
  EXPECT_EQ(cuda::flash_attention_tuning_for("").backward, Backward::automatic);
  const std::string message = test::error_of([] { cuda::flash_attention_tuning_for("wgma"); });
  EXPECT_NE(message.find("ZT_ATTENTION_BACKWARD='wgma'"), std::string::npos) << message;
  EXPECT_NE(message.find("auto, wgmma, cudnn"), std::string::npos) << message;
  using Forward = cuda::FlashAttentionTuning::Forward;
  EXPECT_EQ(cuda::flash_attention_tuning_for("", "cudnn").forward, Forward::cudnn);
  EXPECT_EQ(cuda::flash_attention_tuning_for("", "flash").forward, Forward::flash);
  EXPECT_EQ(cuda::flash_attention_tuning_for("", "").forward, Forward::automatic);
  const std::string forward_message = test::error_of([] { cuda::flash_attention_tuning_for("", "cudn"); });
  EXPECT_NE(forward_message.find("ZT_ATTENTION_FORWARD='cudn'"), std::string::npos) << forward_message;
  EXPECT_EQ(cuda::flash_attention_tuning_for("", "", "16").wgmma_backward_window, 16);
  EXPECT_EQ(cuda::flash_attention_tuning_for("", "", "").wgmma_backward_window, 0);
  for (const char* wrong : {"-1", "x", "12345", "4 "}) {
    const std::string window_message = test::error_of([&] { cuda::flash_attention_tuning_for("", "", wrong); });
    EXPECT_NE(window_message.find(std::string("ZT_ATTENTION_BACKWARD_WINDOW='") + wrong + "'"), std::string::npos)
        << window_message;
  }
#else
  GTEST_SKIP() << "this build has no CUDA backend";
#endif
}

// The wgmma backward's block order (block_windows.hpp, plain arithmetic: runs without a GPU):
// every block of the grid exactly once; within a window, all of its columns' row r before any
// row r + 1 (the longest blocks first), the windows one after another; a window as wide as the
// grid is the grid's own order. GPT-2 124M's grid (192 x 8), Llama 1.1B's (16 x 16), narrow and
// uneven windows, one column, one row.
TEST(CudaAttention, BackwardBlockWindowsCoverTheGridLongestFirst) {
  using cuda::GridPlace;
  const std::tuple<int, int, int> grids[] = {{192, 8, 33}, {192, 8, 32}, {16, 16, 16}, {16, 16, 4}, {5, 7, 2},
                                             {4, 3, 3},   {1, 9, 1},    {7, 1, 3},   {6, 4, 100}};
  for (const auto& [columns, rows, window] : grids) {
    SCOPED_TRACE(std::to_string(columns) + " x " + std::to_string(rows) + ", windows of " + std::to_string(window));
    std::vector<int> seen(size_t(columns * rows), 0);
    int last_window = 0, last_row = -1, last_column = -1;
    for (int linear = 0; linear < columns * rows; ++linear) {
      const GridPlace p = cuda::windowed_place(linear, columns, rows, window);
      ASSERT_TRUE(p.column >= 0 && p.column < columns && p.row >= 0 && p.row < rows)
          << "block " << linear << " at (" << p.column << ", " << p.row << ")";
      ++seen[size_t(p.row * columns + p.column)];
      const int w = p.column / window;
      ASSERT_GE(w, last_window) << "block " << linear << " goes back to an earlier window";
      if (w != last_window) last_row = -1, last_column = -1;
      ASSERT_TRUE(p.row > last_row || (p.row == last_row && p.column > last_column))
          << "block " << linear << " at (" << p.column << ", " << p.row << ") after (" << last_column << ", "
          << last_row << ") in its window";
      last_window = w, last_row = p.row, last_column = p.column;
      if (window >= columns) {
        EXPECT_TRUE(p.column == linear % columns && p.row == linear / columns) << linear;
      }
    }
    EXPECT_TRUE(std::all_of(seen.begin(), seen.end(), [](int n) { return n == 1; }));
  }
  // The default window: 2 waves of resident blocks, at most the grid's width; a tuned one as set.
  EXPECT_EQ(cuda::window_columns(192, 8, 132, 0), 33);   // GPT-2 124M, 2 warpgroups a block
  EXPECT_EQ(cuda::window_columns(192, 16, 264, 0), 33);  // one warpgroup: 64-key blocks, 2 a multiprocessor
  EXPECT_EQ(cuda::window_columns(16, 16, 132, 0), 16);   // Llama 1.1B: the whole grid
  EXPECT_EQ(cuda::window_columns(192, 8, 132, 5), 5);
  EXPECT_EQ(cuda::window_columns(192, 8, 132, 9999), 192);
}

TEST(CudaAttention, SavedStateIsTheLogSumExp) {
  ZT_REQUIRE_CUDA();
  EXPECT_EQ(ops::attention_saved_shape(Device::cuda(), 2, 3, 5), (Shape{2, 3, 5}));
  EXPECT_EQ(ops::attention_saved_shape(Device::cpu(), 2, 3, 5), (Shape{2, 3, 5, 5}));
  EXPECT_EQ(ops::stats_dtype(DType::bf16), DType::f32);
}

// Head sizes whose halves are whole 16-byte chunks take the chunk kernel (32, 64), other multiples
// of 4 the pairs kernel (12), the rest the element kernel (6); an offset of 2000 gives
// Llama-length angles. The 6 rotated heads of 8 leave the chunk kernel's last group of heads short.
TEST(CudaRope, ForwardAndInverseMatchCpu) {
  ZT_REQUIRE_CUDA();
  Rng rng(302);
  for (const auto& [hd, offset] : {std::pair<int64_t, int64_t>{32, 7}, {64, 2000}, {12, 5}, {6, 3}})
  for (DType dtype : {DType::f32, DType::bf16}) {
    SCOPED_TRACE(testing::Message() << dtype_name(dtype) << " HD=" << hd << " offset=" << offset);
    const int64_t b = 2, t = 50, heads = 8, rotated = 6;
    std::vector<float> inv(size_t(hd / 2));
    for (int64_t i = 0; i < hd / 2; ++i) inv[size_t(i)] = 1.0f / std::pow(10000.0f, float(2 * i) / float(hd));
    const Tensor inv_freq = Tensor::from_floats({hd / 2}, inv);
    const Tensor x = host_values({b, t, heads, hd}, dtype, rng);
    const Tensor ref = x.clone();
    ops::rope_forward(ref, inv_freq, rotated, offset);
    const Tensor d_x = on_device(x, dtype);
    ops::rope_forward(d_x, inv_freq.to(Device::cuda()), rotated, offset);
    EXPECT_TRUE(expect_close("rope_forward", d_x, ref, dtype));
    ops::rope_backward(d_x, inv_freq.to(Device::cuda()), rotated, offset);
    EXPECT_TRUE(expect_close("rope_backward (inverse)", d_x, x, dtype));
  }
}

}  // namespace
}  // namespace zt
