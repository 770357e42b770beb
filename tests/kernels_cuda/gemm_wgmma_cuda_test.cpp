// The own wgmma product (kernels/cuda/gemm_wgmma.hpp) against the CPU reference, bf16: each
// epilogue (plain with and without bias and residual, GELU with its pre-activation, GELU's
// derivative), B K-major and MN-major, each staging (halves, whole tile) in clusters of 1 and 2
// blocks, on shapes with partial tiles in M, N and K (N = 136 leaves the second 64-column half of
// the last tile wholly outside B and the aux), outputs poisoned first.
// And matmul_forward / matmul_backward through GELU with the kernel on for both, for the forward
// only, and off, in the same run; and ZT_MATMUL_OWN_GEMM's values.
#include <gtest/gtest.h>

#include <tuple>

#include "cuda_compare.hpp"
#if ZT_HAS_CUDA
#include "kernels/cuda/cuda_ops.hpp"
#include "kernels/cuda/gemm_wgmma.hpp"
#endif
#include "zt/kernels/ops.hpp"

namespace zt {
namespace {

using namespace test;
using ops::Activation;
using ops::WeightLayout;

#if ZT_HAS_CUDA
#define ZT_REQUIRE_WGMMA()                                                                          \
  do {                                                                                              \
    ZT_REQUIRE_CUDA();                                                                              \
    if (!cuda::flash_wgmma_runs()) GTEST_SKIP() << "the wgmma product needs a Hopper GPU (sm_90a)"; \
  } while (0)
#else
#define ZT_REQUIRE_WGMMA() ZT_REQUIRE_CUDA()
#endif

// (M, N, K): one tile; partial tiles everywhere; more tiles than a grid holds, several k-blocks;
// then 3 and more tiles a block (each consumer takes a second tile, which reuses the stages the
// other consumer's tile passed through) with more k-blocks than stages, and with fewer.
const std::tuple<int64_t, int64_t, int64_t> kShapes[] = {{128, 128, 64},    {37, 48, 24},       {300, 200, 136},
                                                         {200, 136, 72},    {2048, 1032, 264},  {2304, 2048, 776},
                                                         {4096, 2304, 200}};

Shape weight_shape(WeightLayout layout, int64_t k, int64_t n) {
  return layout == WeightLayout::out_in ? Shape{n, k} : Shape{k, n};
}

#if ZT_HAS_CUDA
using cuda::bf16;
using cuda::ptr;
#endif

TEST(CudaGemmWgmma, EpiloguesMatchCpu) {
  ZT_REQUIRE_WGMMA();
#if ZT_HAS_CUDA
  Rng rng(211);
  const DType dtype = DType::bf16;
  for (const auto& [m, n, k] : kShapes)
    for (WeightLayout layout : {WeightLayout::out_in, WeightLayout::in_out})
      for (cuda::WgmmaEpilogue epilogue :
           {cuda::WgmmaEpilogue::plain, cuda::WgmmaEpilogue::gelu, cuda::WgmmaEpilogue::dgelu})
        for (bool extras : {false, true}) {  // plain: bias and residual; gelu: bias
          if (epilogue == cuda::WgmmaEpilogue::dgelu && extras) continue;
          SCOPED_TRACE(testing::Message() << "M=" << m << " N=" << n << " K=" << k << " layout=" << int(layout)
                                          << " epilogue=" << int(epilogue) << " extras=" << extras);
          const Tensor a = host_values({m, k}, dtype, rng);
          const Tensor w = host_values(weight_shape(layout, k, n), dtype, rng, -0.2, 0.2);
          const Tensor bias = extras ? host_values({n}, dtype, rng) : Tensor();
          const Tensor residual =
              extras && epilogue == cuda::WgmmaEpilogue::plain ? host_values({m, n}, dtype, rng) : Tensor();
          const Tensor aux = host_values({m, n}, dtype, rng, -3, 3);

          // The CPU: the product (with bias, residual, GELU), then GELU's derivative for dgelu.
          const Tensor product = Tensor::empty({m, n}, DType::f32), pre = Tensor::empty({m, n}, DType::f32);
          const bool gelu = epilogue == cuda::WgmmaEpilogue::gelu;
          ops::matmul_forward(product, gelu ? pre : Tensor(), a, w, bias, layout,
                              gelu ? Activation::gelu_tanh : Activation::none, residual);
          Tensor want = product;
          if (epilogue == cuda::WgmmaEpilogue::dgelu) {
            want = Tensor::empty({m, n}, DType::f32);
            ops::gelu_backward(want, product.to(dtype).to(DType::f32), aux);
          }

          const Tensor d_a = on_device(a, dtype), d_w = on_device(w, dtype);
          const Tensor d_bias = bias.defined() ? on_device(bias, dtype) : Tensor();
          const Tensor d_residual = residual.defined() ? on_device(residual, dtype) : Tensor();
          const Tensor d_aux = on_device(aux, dtype);
          // Each staging in clusters of 1 and 2 blocks, against the one reference.
          for (cuda::WgmmaStaging staging : {cuda::WgmmaStaging::halves, cuda::WgmmaStaging::whole})
            for (int cluster : {1, 2}) {
              SCOPED_TRACE(testing::Message() << "staging=" << int(staging) << " cluster=" << cluster);
              const Tensor d_out = poisoned({m, n}, dtype), d_pre = poisoned({m, n}, dtype);
              cuda::WgmmaGemm p;
              p.out = ptr<bf16>(d_out), p.a = ptr<bf16>(d_a), p.b = ptr<bf16>(d_w);
              p.b_mn_major = layout == WeightLayout::in_out;
              p.m = m, p.n = n, p.k = k, p.epilogue = epilogue, p.cluster = cluster, p.staging = staging;
              if (epilogue != cuda::WgmmaEpilogue::dgelu) p.bias = ptr<bf16>(d_bias);
              if (epilogue == cuda::WgmmaEpilogue::plain) p.residual = ptr<bf16>(d_residual);
              if (gelu) p.pre_act = ptr<bf16>(d_pre);
              if (epilogue == cuda::WgmmaEpilogue::dgelu) p.aux = ptr<bf16>(d_aux);
              ASSERT_TRUE(cuda::wgmma_gemm_fits(p));
              cuda::wgmma_gemm(p);
              EXPECT_TRUE(expect_close("wgmma_gemm.out", d_out, want, dtype));
              if (gelu) {
                EXPECT_TRUE(expect_close("wgmma_gemm.pre_act", d_pre, pre, dtype));
              }
            }
        }
#endif
}

// What the kernel does not take, it says so (and matmul_forward then uses cuBLASLt).
TEST(CudaGemmWgmma, RefusesWhatItCannotTake) {
  ZT_REQUIRE_WGMMA();
#if ZT_HAS_CUDA
  const Tensor a = Tensor::zeros({64, 64}, DType::bf16, Device::cuda());
  const Tensor w = Tensor::zeros({64, 64}, DType::bf16, Device::cuda());
  const Tensor out = Tensor::zeros({64, 64}, DType::bf16, Device::cuda());
  cuda::WgmmaGemm p;
  p.out = ptr<bf16>(out), p.a = ptr<bf16>(a), p.b = ptr<bf16>(w), p.m = 64, p.n = 64, p.k = 64;
  EXPECT_TRUE(cuda::wgmma_gemm_fits(p));
  cuda::WgmmaGemm odd_n = p;
  odd_n.n = 60;
  EXPECT_FALSE(cuda::wgmma_gemm_fits(odd_n));
  cuda::WgmmaGemm misaligned = p;
  misaligned.a = ptr<bf16>(a) + 1;
  EXPECT_FALSE(cuda::wgmma_gemm_fits(misaligned));
  cuda::WgmmaGemm cluster_of_three = p;
  cluster_of_three.cluster = 3;
  EXPECT_FALSE(cuda::wgmma_gemm_fits(cluster_of_three));
  cuda::WgmmaGemm gelu_without_pre = p;
  gelu_without_pre.epilogue = cuda::WgmmaEpilogue::gelu;
  EXPECT_FALSE(cuda::wgmma_gemm_fits(gelu_without_pre));
  try {
    cuda::wgmma_gemm(odd_n);
    ADD_FAILURE() << "no error for N = 60";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("does not fit"), std::string::npos) << e.what();
  }
#endif
}

// matmul_forward with GELU and matmul_backward through GELU (the MLP's two products), with the
// own kernel and with cuBLASLt's epilogues, against the CPU.
TEST(CudaGemmWgmma, MatmulThroughGeluMatchesCpuBothWays) {
  ZT_REQUIRE_WGMMA();
#if ZT_HAS_CUDA
  Rng rng(212);
  const DType dtype = DType::bf16;
  const int64_t n = 520, c = 96, oc = 384;
  for (WeightLayout layout : {WeightLayout::out_in, WeightLayout::in_out})
    for (cuda::OwnGemm own : {cuda::OwnGemm::both, cuda::OwnGemm::forward, cuda::OwnGemm::none}) {
      SCOPED_TRACE(testing::Message() << "layout=" << int(layout) << " own=" << int(own));
      const cuda::OwnGemm previous = cuda::set_matmul_own_gemm(own);
      // Forward: pre = inp W^T + b, out = gelu(pre).
      const Tensor inp = host_values({n, c}, dtype, rng), w = host_values(weight_shape(layout, c, oc), dtype, rng, -0.2, 0.2);
      const Tensor bias = host_values({oc}, dtype, rng);
      const Tensor out = Tensor::empty({n, oc}, DType::f32), pre = Tensor::empty({n, oc}, DType::f32);
      ops::matmul_forward(out, pre, inp, w, bias, layout, Activation::gelu_tanh);
      const Tensor d_out = poisoned({n, oc}, dtype), d_pre = poisoned({n, oc}, dtype);
      ops::matmul_forward(d_out, d_pre, on_device(inp, dtype), on_device(w, dtype), on_device(bias, dtype), layout,
                          Activation::gelu_tanh);
      EXPECT_TRUE(expect_close("matmul_forward.out (own gemm)", d_out, out, dtype));
      EXPECT_TRUE(expect_close("matmul_forward.pre_act (own gemm)", d_pre, pre, dtype));

      // Backward of the next product (oc -> c) into the GELU: dinp = (dout W) * gelu'(inp_pre).
      const Tensor w2 = host_values(weight_shape(layout, oc, c), dtype, rng, -0.2, 0.2);
      const Tensor dout = host_values({n, c}, dtype, rng), h = host_values({n, oc}, dtype, rng);
      const Tensor h_pre = host_values({n, oc}, dtype, rng, -3, 3);
      const Tensor dinp = Tensor::empty({n, oc}, DType::f32);
      ops::matmul_backward(dinp, Tensor(), Tensor(), dout, h, w2, Tensor(), layout, Activation::none,
                           Activation::gelu_tanh, h_pre);
      const Tensor d_dinp = poisoned({n, oc}, dtype);
      ops::matmul_backward(d_dinp, Tensor(), Tensor(), on_device(dout, dtype), on_device(h, dtype),
                           on_device(w2, dtype), Tensor(), layout, Activation::none, Activation::gelu_tanh,
                           on_device(h_pre, dtype));
      EXPECT_TRUE(expect_close("matmul_backward.dinp through gelu (own gemm)", d_dinp, dinp, dtype));
      cuda::set_matmul_own_gemm(previous);
    }
#endif
}

TEST(CudaGemmWgmma, OwnGemmChoicesAreNamed) {
#if ZT_HAS_CUDA
  EXPECT_EQ(cuda::own_gemm_for("0"), cuda::OwnGemm::none);
  EXPECT_EQ(cuda::own_gemm_for("forward"), cuda::OwnGemm::forward);
  EXPECT_EQ(cuda::own_gemm_for("1"), cuda::OwnGemm::both);
  try {
    cuda::own_gemm_for("backward");
    ADD_FAILURE() << "no error for ZT_MATMUL_OWN_GEMM=backward";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("ZT_MATMUL_OWN_GEMM='backward'"), std::string::npos) << e.what();
  }
#else
  GTEST_SKIP() << "built without CUDA";
#endif
}

}  // namespace
}  // namespace zt
