// CUDA causal attention (flash: log-sum-exp saved, probabilities recomputed) against the CPU
// reference, f32 and bf16, MHA and GQA, head sizes on and off the tensor-core kernels' list, with
// lengths that do not fill the last tile; both kernel families for bf16. Also RoPE.
// Letters: B batch, T sequence, NH query heads, NKV key/value heads, HD head size.
#include <gtest/gtest.h>

#include <cmath>
#include <tuple>

#include "cuda_compare.hpp"
#if ZT_HAS_CUDA
#include "kernels/cuda/cuda_ops.hpp"
#endif
#include "zt/kernels/ops.hpp"

namespace zt {
namespace {

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

// Which attention kernels run: the tensor-core ones where they apply, or the simple ones everywhere.
enum class Kernels { automatic, simple };
void use_kernels(Kernels kernels) {
#if ZT_HAS_CUDA
  cuda::set_attention_kernels(kernels == Kernels::simple ? cuda::AttentionKernels::simple
                                                         : cuda::AttentionKernels::automatic);
#endif
}

struct Case {
  int64_t b, t, nh, nkv, hd;
};
const Case kCases[] = {{2, 37, 4, 4, 16}, {1, 130, 4, 2, 64}, {2, 200, 4, 1, 128}, {1, 64, 2, 2, 64},
                       {2, 257, 6, 2, 64}, {1, 96, 2, 1, 40}, {1, 300, 2, 2, 128}};

TEST(CudaAttention, ForwardAndBackwardMatchCpu) {
  ZT_REQUIRE_CUDA();
  Rng rng(301);
  for (const Case& k : kCases)
    for (DType dtype : {DType::f32, DType::bf16})
      for (Kernels kernels : {Kernels::automatic, Kernels::simple}) {
        if (dtype == DType::f32 && kernels == Kernels::simple) continue;  // f32 always runs these
        const bool flash = dtype == DType::bf16 && kernels == Kernels::automatic &&
                           (k.hd == 64 || k.hd == 128);
        SCOPED_TRACE(testing::Message() << dtype_name(dtype) << " B=" << k.b << " T=" << k.t << " NH=" << k.nh
                                        << " NKV=" << k.nkv << " HD=" << k.hd << (flash ? " tensor-core" : " simple"));
        const std::string family = flash ? " (tensor cores)" : " (simple)";
        const int64_t width = (k.nh + 2 * k.nkv) * k.hd;
        const Tensor qkv = host_values({k.b, k.t, width}, dtype, rng, -2.0, 2.0);
        const Tensor out = Tensor::empty({k.b, k.t, k.nh * k.hd}, DType::f32);
        const Tensor att = Tensor::empty({k.b, k.nh, k.t, k.t}, DType::f32);
        ops::attention_forward(out, att, qkv, k.nh, k.nkv);

        use_kernels(kernels);
        const Tensor d_qkv = on_device(qkv, dtype);
        const Tensor d_out = poisoned({k.b, k.t, k.nh * k.hd}, dtype);
        const Tensor d_lse = poisoned(ops::attention_saved_shape(Device::cuda(), k.b, k.nh, k.t), DType::f32);
        ops::attention_forward(d_out, d_lse, d_qkv, k.nh, k.nkv);
        EXPECT_TRUE(expect_close("attention_forward.out" + family, d_out, out, dtype));
        EXPECT_TRUE(expect_close("attention_forward.lse" + family, d_lse, reference_lse(qkv, k.nh, k.nkv), dtype,
                                 1e-5));

        const Tensor dout = host_values({k.b, k.t, k.nh * k.hd}, dtype, rng);
        const Tensor dqkv = Tensor::empty(qkv.shape(), DType::f32);
        ops::attention_backward(dqkv, dout, qkv, att, k.nh, k.nkv);
        const Tensor d_dqkv = poisoned(qkv.shape(), dtype);
        ops::attention_backward(d_dqkv, on_device(dout, dtype), d_qkv, d_lse, k.nh, k.nkv);
        use_kernels(Kernels::automatic);
        // Query, key and value gradients separately: each must be right on its own.
        const int64_t n = k.b * k.t;
        const Tensor rows = dqkv.reshape({n, width}), d_rows = d_dqkv.to(Device::cpu()).reshape({n, width});
        const int64_t widths[3] = {k.nh * k.hd, k.nkv * k.hd, k.nkv * k.hd};
        const char* names[3] = {"attention_backward.dq", "attention_backward.dk", "attention_backward.dv"};
        std::vector<Tensor> parts, d_parts;
        for (int i = 0; i < 3; ++i) {
          parts.push_back(Tensor::empty({n, widths[i]}, DType::f32));
          d_parts.push_back(Tensor::empty({n, widths[i]}, dtype));
        }
        ops::unpack_columns(parts, rows);
        ops::unpack_columns(d_parts, d_rows);
        // The tensor-core backward rounds P and dS to bf16 for its products, as flash attention does.
        const double tol = flash ? 3e-2 : -1;
        for (int i = 0; i < 3; ++i)
          EXPECT_TRUE(expect_close(names[i] + family, d_parts[size_t(i)], parts[size_t(i)], dtype, tol));
      }
}

TEST(CudaAttention, SavedStateIsTheLogSumExp) {
  ZT_REQUIRE_CUDA();
  EXPECT_EQ(ops::attention_saved_shape(Device::cuda(), 2, 3, 5), (Shape{2, 3, 5}));
  EXPECT_EQ(ops::attention_saved_shape(Device::cpu(), 2, 3, 5), (Shape{2, 3, 5, 5}));
  EXPECT_EQ(ops::stats_dtype(DType::bf16), DType::f32);
}

TEST(CudaRope, ForwardAndInverseMatchCpu) {
  ZT_REQUIRE_CUDA();
  Rng rng(302);
  for (DType dtype : {DType::f32, DType::bf16}) {
    const int64_t b = 2, t = 50, heads = 8, rotated = 6, hd = 32, offset = 7;
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
