// CUDA LayerNorm and RMSNorm against the CPU reference, f32 and bf16 (statistics in f32):
// outputs, saved mean/rstd, the input gradient (overwritten) and the parameter gradients
// (accumulated onto prefilled values); the residual add fused in front of the forward and the
// residual gradient added in the backward. Letters: N rows, C channels.
#include <gtest/gtest.h>

#include <tuple>

#include "cuda_compare.hpp"
#include "zt/kernels/ops.hpp"

namespace zt {
namespace {

using namespace test;

// Rows of whole 16-byte chunks run the register kernels: the forwards up to 8 chunks a lane
// (norm_rows.cu), the backwards up to 384 chunks a row (norm_rows_backward.cu); the rest (77
// wide; 4096 wide) the general ones. 3000 x 768 and 1500 x 2048 are more rows than the
// backwards' groups, so each group carries its sums over several rows.
const std::tuple<int64_t, int64_t> kSizes[] = {{7, 64},     {300, 77},  {3000, 768}, {33, 4096},
                                               {513, 1024}, {64, 2048}, {1500, 2048}, {100, 1000}};

TEST(CudaLayerNorm, ForwardAndBackwardMatchCpu) {
  ZT_REQUIRE_CUDA();
  Rng rng(201);
  for (const auto& [n, c] : kSizes)
    for (DType dtype : {DType::f32, DType::bf16})
      for (bool has_bias : {true, false}) {
        SCOPED_TRACE(testing::Message() << dtype_name(dtype) << " N=" << n << " C=" << c << " bias=" << has_bias);
        const Tensor inp = host_values({n, c}, dtype, rng, 1.0, 4.0);  // an offset mean
        const Tensor weight = host_values({c}, dtype, rng, 0.5, 1.5);
        const Tensor bias = has_bias ? host_values({c}, dtype, rng) : Tensor();
        const Tensor out = Tensor::empty({n, c}, DType::f32), mean = Tensor::empty({n}, DType::f32),
                     rstd = Tensor::empty({n}, DType::f32);
        ops::layernorm_forward(out, mean, rstd, inp, weight, bias, 1e-5);
        const Tensor d_out = poisoned({n, c}, dtype), d_mean = poisoned({n}, DType::f32),
                     d_rstd = poisoned({n}, DType::f32);
        const Tensor d_inp = on_device(inp, dtype), d_weight = on_device(weight, dtype);
        const Tensor d_bias = has_bias ? on_device(bias, dtype) : Tensor();
        ops::layernorm_forward(d_out, d_mean, d_rstd, d_inp, d_weight, d_bias, 1e-5);
        EXPECT_TRUE(expect_close("layernorm_forward.out", d_out, out, dtype));
        EXPECT_TRUE(expect_close("layernorm_forward.mean", d_mean, mean, dtype, 1e-6));
        EXPECT_TRUE(expect_close("layernorm_forward.rstd", d_rstd, rstd, dtype, 1e-5));

        const Tensor dout = host_values({n, c}, dtype, rng);
        const Tensor dweight0 = host_values({c}, dtype, rng), dbias0 = host_values({c}, dtype, rng);
        const Tensor dinp = Tensor::empty({n, c}, DType::f32), dweight = dweight0.clone(), dbias = dbias0.clone();
        ops::layernorm_backward(dinp, dweight, has_bias ? dbias : Tensor(), dout, inp, weight, mean, rstd);
        const Tensor d_dinp = poisoned({n, c}, dtype), d_dweight = on_device(dweight0, dtype),
                     d_dbias = on_device(dbias0, dtype);
        ops::layernorm_backward(d_dinp, d_dweight, has_bias ? d_dbias : Tensor(), on_device(dout, dtype), d_inp,
                                d_weight, d_mean, d_rstd);
        EXPECT_TRUE(expect_close("layernorm_backward.dinp", d_dinp, dinp, dtype));
        EXPECT_TRUE(expect_close("layernorm_backward.dweight", d_dweight, dweight, dtype));
        if (has_bias) {
          EXPECT_TRUE(expect_close("layernorm_backward.dbias", d_dbias, dbias, dtype));
        }
      }
}

TEST(CudaRMSNorm, ForwardAndBackwardMatchCpu) {
  ZT_REQUIRE_CUDA();
  Rng rng(202);
  for (const auto& [n, c] : kSizes)
    for (DType dtype : {DType::f32, DType::bf16}) {
      SCOPED_TRACE(testing::Message() << dtype_name(dtype) << " N=" << n << " C=" << c);
      const Tensor inp = host_values({n, c}, dtype, rng, -2.0, 2.0);
      const Tensor weight = host_values({c}, dtype, rng, 0.5, 1.5);
      const Tensor out = Tensor::empty({n, c}, DType::f32), rstd = Tensor::empty({n}, DType::f32);
      ops::rmsnorm_forward(out, rstd, inp, weight, 1e-6);
      const Tensor d_out = poisoned({n, c}, dtype), d_rstd = poisoned({n}, DType::f32);
      const Tensor d_inp = on_device(inp, dtype), d_weight = on_device(weight, dtype);
      ops::rmsnorm_forward(d_out, d_rstd, d_inp, d_weight, 1e-6);
      EXPECT_TRUE(expect_close("rmsnorm_forward.out", d_out, out, dtype));
      EXPECT_TRUE(expect_close("rmsnorm_forward.rstd", d_rstd, rstd, dtype, 1e-5));

      const Tensor dout = host_values({n, c}, dtype, rng), dweight0 = host_values({c}, dtype, rng);
      const Tensor dinp = Tensor::empty({n, c}, DType::f32), dweight = dweight0.clone();
      ops::rmsnorm_backward(dinp, dweight, dout, inp, weight, rstd);
      const Tensor d_dinp = poisoned({n, c}, dtype), d_dweight = on_device(dweight0, dtype);
      ops::rmsnorm_backward(d_dinp, d_dweight, on_device(dout, dtype), d_inp, d_weight, d_rstd);
      EXPECT_TRUE(expect_close("rmsnorm_backward.dinp", d_dinp, dinp, dtype));
      EXPECT_TRUE(expect_close("rmsnorm_backward.dweight", d_dweight, dweight, dtype));
    }
}

// sum = inp + residual written over inp (as the decoder block does), normalized; the backward
// adds dinp_add. Both norms, every size (register and general kernels), f32 and bf16.
TEST(CudaNorm, ResidualAddAndResidualGradientMatchCpu) {
  ZT_REQUIRE_CUDA();
  Rng rng(203);
  for (const auto& [n, c] : kSizes)
    for (DType dtype : {DType::f32, DType::bf16})
      for (bool rms : {false, true}) {
        SCOPED_TRACE(testing::Message() << (rms ? "rmsnorm " : "layernorm ") << dtype_name(dtype) << " N=" << n
                                        << " C=" << c);
        const Tensor inp = host_values({n, c}, dtype, rng, -2.0, 2.0), residual = host_values({n, c}, dtype, rng);
        const Tensor weight = host_values({c}, dtype, rng, 0.5, 1.5), bias = host_values({c}, dtype, rng);
        const Tensor sum = inp.clone(), out = Tensor::empty({n, c}, DType::f32), mean = Tensor::empty({n}, DType::f32),
                     rstd = Tensor::empty({n}, DType::f32);
        const Tensor d_x = on_device(inp, dtype), d_residual = on_device(residual, dtype);
        const Tensor d_weight = on_device(weight, dtype), d_bias = on_device(bias, dtype);
        const Tensor d_out = poisoned({n, c}, dtype), d_mean = poisoned({n}, DType::f32), d_rstd = poisoned({n}, DType::f32);
        if (rms) {
          ops::rmsnorm_forward_residual(sum, out, rstd, sum, residual, weight, 1e-6);
          ops::rmsnorm_forward_residual(d_x, d_out, d_rstd, d_x, d_residual, d_weight, 1e-6);
        } else {
          ops::layernorm_forward_residual(sum, out, mean, rstd, sum, residual, weight, bias, 1e-5);
          ops::layernorm_forward_residual(d_x, d_out, d_mean, d_rstd, d_x, d_residual, d_weight, d_bias, 1e-5);
        }
        EXPECT_TRUE(expect_close("norm_forward_residual.sum", d_x, sum, dtype));
        EXPECT_TRUE(expect_close("norm_forward_residual.out", d_out, out, dtype));

        const Tensor dout = host_values({n, c}, dtype, rng), dadd = host_values({n, c}, dtype, rng);
        const Tensor dinp = Tensor::empty({n, c}, DType::f32), d_dinp = poisoned({n, c}, dtype);
        // The references take the device's sum and statistics, so that only the backward is compared.
        const Tensor h_sum = d_x.to(Device::cpu()).to(DType::f32);
        if (rms) {
          ops::rmsnorm_backward(dinp, Tensor(), dout, h_sum, weight, d_rstd.to(Device::cpu()), dadd);
          ops::rmsnorm_backward(d_dinp, Tensor(), on_device(dout, dtype), d_x, d_weight, d_rstd, on_device(dadd, dtype));
        } else {
          ops::layernorm_backward(dinp, Tensor(), Tensor(), dout, h_sum, weight, d_mean.to(Device::cpu()),
                                  d_rstd.to(Device::cpu()), dadd);
          ops::layernorm_backward(d_dinp, Tensor(), Tensor(), on_device(dout, dtype), d_x, d_weight, d_mean, d_rstd,
                                  on_device(dadd, dtype));
        }
        EXPECT_TRUE(expect_close("norm_backward.dinp + dinp_add", d_dinp, dinp, dtype));
      }
}

TEST(CudaNorm, StatisticsMustBeF32ForBf16) {
  ZT_REQUIRE_CUDA();
  const Tensor x = Tensor::zeros({4, 8}, DType::bf16, Device::cuda());
  const Tensor w = Tensor::zeros({8}, DType::bf16, Device::cuda());
  EXPECT_TRUE(throws_error_naming(
      [&] {
        ops::rmsnorm_forward(Tensor::empty({4, 8}, DType::bf16, Device::cuda()),
                             Tensor::empty({4}, DType::bf16, Device::cuda()), x, w, 1e-5);
      },
      {"rmsnorm_forward", "rstd", "f32"}));
}

}  // namespace
}  // namespace zt
