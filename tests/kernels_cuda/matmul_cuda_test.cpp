// CUDA matmul (cuBLASLt, bias and GELU epilogues) against the CPU reference, f32 and bf16: the
// forward with and without cuBLASLt's fused GELU, the backward's three gradients (dinp
// overwritten, dweight and dbias accumulated onto prefilled values, or dweight written over a
// poisoned buffer). Letters: N rows, C in, OC out.
#include <gtest/gtest.h>

#include <tuple>

#include "bit_equal.hpp"
#include "cuda_compare.hpp"
#include "error_text.hpp"
#if ZT_HAS_CUDA
#include "kernels/cuda/blaslt_search.hpp"
#include "kernels/cuda/cuda_ops.hpp"
#endif
#include "zt/kernels/ops.hpp"

namespace zt {
namespace {

using namespace test;
using test::bit_equal;
using ops::Activation;
using ops::WeightLayout;

// Whether cuBLASLt's GELU epilogue runs (the other path is a separate GELU kernel).
void use_gelu_epilogue(bool enabled) {
#if ZT_HAS_CUDA
  cuda::set_matmul_gelu_epilogue(enabled);
#endif
}

Shape weight_shape(WeightLayout layout, int64_t c, int64_t oc) {
  return layout == WeightLayout::out_in ? Shape{oc, c} : Shape{c, oc};
}

// The last has OC rows that are not 16-byte aligned and enough elements to take the padded path.
const std::tuple<int64_t, int64_t, int64_t> kSizes[] = {{37, 64, 48}, {128, 96, 130}, {256, 128, 256}, {1100, 64, 1001}};

TEST(CudaMatmul, ForwardMatchesCpu) {
  ZT_REQUIRE_CUDA();
  Rng rng(101);
  for (const auto& [n, c, oc] : kSizes)
    for (DType dtype : {DType::f32, DType::bf16})
      for (WeightLayout layout : {WeightLayout::out_in, WeightLayout::in_out})
        for (Activation act : {Activation::none, Activation::gelu_tanh})
          for (bool has_bias : {true, false})
            for (bool epilogue : {true, false}) {
              if (act == Activation::none && !epilogue) continue;
              SCOPED_TRACE(testing::Message() << dtype_name(dtype) << " N=" << n << " C=" << c << " OC=" << oc
                                              << " layout=" << int(layout) << " gelu=" << int(act)
                                              << " bias=" << has_bias << " epilogue=" << epilogue);
              const Tensor inp = host_values({n, c}, dtype, rng);
              const Tensor weight = host_values(weight_shape(layout, c, oc), dtype, rng, -0.2, 0.2);
              const Tensor bias = has_bias ? host_values({oc}, dtype, rng) : Tensor();
              const Tensor out = Tensor::empty({n, oc}, DType::f32), pre = Tensor::empty({n, oc}, DType::f32);
              ops::matmul_forward(out, act == Activation::none ? Tensor() : pre, inp, weight, bias, layout, act);

              const Tensor d_out = poisoned({n, oc}, dtype), d_pre = poisoned({n, oc}, dtype);
              use_gelu_epilogue(epilogue);
              ops::matmul_forward(d_out, act == Activation::none ? Tensor() : d_pre, on_device(inp, dtype),
                                  on_device(weight, dtype), has_bias ? on_device(bias, dtype) : Tensor(), layout, act);
              use_gelu_epilogue(true);
              EXPECT_TRUE(expect_close(epilogue ? "matmul_forward.out" : "matmul_forward.out (gelu kernel)", d_out,
                                       out, dtype));
              if (act != Activation::none) {
                EXPECT_TRUE(expect_close("matmul_forward.pre_act", d_pre, pre, dtype));
              }
            }
}

// The residual added by the product's epilogue (C input, beta 1), or by a separate pass where the
// output is padded or GELU's (the last size, and the GELU cases).
TEST(CudaMatmul, ForwardWithResidualMatchesCpu) {
  ZT_REQUIRE_CUDA();
  Rng rng(102);
  for (const auto& [n, c, oc] : kSizes)
    for (DType dtype : {DType::f32, DType::bf16})
      for (Activation act : {Activation::none, Activation::gelu_tanh})
        for (bool has_bias : {true, false}) {
          SCOPED_TRACE(testing::Message() << dtype_name(dtype) << " N=" << n << " C=" << c << " OC=" << oc
                                          << " gelu=" << int(act) << " bias=" << has_bias);
          const WeightLayout layout = WeightLayout::out_in;
          const Tensor inp = host_values({n, c}, dtype, rng);
          const Tensor weight = host_values(weight_shape(layout, c, oc), dtype, rng, -0.2, 0.2);
          const Tensor bias = has_bias ? host_values({oc}, dtype, rng) : Tensor();
          const Tensor residual = host_values({n, oc}, dtype, rng);
          const Tensor out = Tensor::empty({n, oc}, DType::f32), pre = Tensor::empty({n, oc}, DType::f32);
          ops::matmul_forward(out, act == Activation::none ? Tensor() : pre, inp, weight, bias, layout, act, residual);

          const Tensor d_out = poisoned({n, oc}, dtype), d_pre = poisoned({n, oc}, dtype);
          ops::matmul_forward(d_out, act == Activation::none ? Tensor() : d_pre, on_device(inp, dtype),
                              on_device(weight, dtype), has_bias ? on_device(bias, dtype) : Tensor(), layout, act,
                              on_device(residual, dtype));
          EXPECT_TRUE(expect_close("matmul_forward.out + residual", d_out, out, dtype));
        }
}

TEST(CudaMatmul, BackwardMatchesCpu) {
  ZT_REQUIRE_CUDA();
  Rng rng(102);
  for (const auto& [n, c, oc] : kSizes)
    for (DType dtype : {DType::f32, DType::bf16})
      for (WeightLayout layout : {WeightLayout::out_in, WeightLayout::in_out})
        for (Activation act : {Activation::none, Activation::gelu_tanh})
          for (bool has_bias : {true, false}) {
            SCOPED_TRACE(testing::Message() << dtype_name(dtype) << " N=" << n << " C=" << c << " OC=" << oc
                                            << " layout=" << int(layout) << " gelu=" << int(act)
                                            << " bias=" << has_bias);
            const Shape ws = weight_shape(layout, c, oc);
            const Tensor inp = host_values({n, c}, dtype, rng), weight = host_values(ws, dtype, rng, -0.2, 0.2);
            const Tensor dout = host_values({n, oc}, dtype, rng), pre = host_values({n, oc}, dtype, rng, -3, 3);
            const Tensor dweight0 = host_values(ws, dtype, rng), dbias0 = host_values({oc}, dtype, rng);
            const Tensor gelu_pre = act == Activation::none ? Tensor() : pre;

            const Tensor dinp = Tensor::empty({n, c}, DType::f32), dweight = dweight0.clone(), dbias = dbias0.clone();
            ops::matmul_backward(dinp, dweight, has_bias ? dbias : Tensor(), dout, inp, weight, gelu_pre, layout, act);

            const Tensor d_dinp = poisoned({n, c}, dtype), d_dweight = on_device(dweight0, dtype),
                         d_dbias = on_device(dbias0, dtype);
            ops::matmul_backward(d_dinp, d_dweight, has_bias ? d_dbias : Tensor(), on_device(dout, dtype),
                                 on_device(inp, dtype), on_device(weight, dtype),
                                 act == Activation::none ? Tensor() : on_device(pre, dtype), layout, act);
            EXPECT_TRUE(expect_close("matmul_backward.dinp", d_dinp, dinp, dtype));
            EXPECT_TRUE(expect_close("matmul_backward.dweight", d_dweight, dweight, dtype));
            if (has_bias) {
              EXPECT_TRUE(expect_close("matmul_backward.dbias", d_dbias, dbias, dtype));
            }
          }
}

// The weight gradient written over its buffer (GradInto::overwrite, a window's first gradient:
// beta 0, the padded path's copy instead of its addition) on a NaN-poisoned dweight, against the
// CPU's gradient added to zeros; the bias gradient still added to its prefilled values. With the
// weight gradient on the compute stream and on the side stream.
TEST(CudaMatmul, BackwardOverwritingTheWeightGradientMatchesCpu) {
  ZT_REQUIRE_CUDA();
  Rng rng(103);
#if ZT_HAS_CUDA
  for (const cuda::SideStreamWork work : {cuda::SideStreamWork::bias, cuda::SideStreamWork::weight_and_bias}) {
    const cuda::SideStreamWork previous = cuda::set_matmul_side_stream(work);
#endif
    for (const auto& [n, c, oc] : kSizes)
      for (DType dtype : {DType::f32, DType::bf16})
        for (WeightLayout layout : {WeightLayout::out_in, WeightLayout::in_out}) {
          SCOPED_TRACE(testing::Message() << dtype_name(dtype) << " N=" << n << " C=" << c << " OC=" << oc
                                          << " layout=" << int(layout));
          const Shape ws = weight_shape(layout, c, oc);
          const Tensor inp = host_values({n, c}, dtype, rng), weight = host_values(ws, dtype, rng, -0.2, 0.2);
          const Tensor dout = host_values({n, oc}, dtype, rng), dbias0 = host_values({oc}, dtype, rng);
          const Tensor dinp = Tensor::empty({n, c}, DType::f32), dweight = Tensor::zeros(ws, DType::f32);
          const Tensor dbias = dbias0.clone();
          ops::matmul_backward(dinp, dweight, dbias, dout, inp, weight, Tensor(), layout, Activation::none);

          const Tensor d_dinp = poisoned({n, c}, dtype), d_dweight = poisoned(ws, dtype);
          const Tensor d_dbias = on_device(dbias0, dtype);
          ops::matmul_backward(d_dinp, d_dweight, d_dbias, on_device(dout, dtype), on_device(inp, dtype),
                               on_device(weight, dtype), Tensor(), layout, Activation::none, Activation::none,
                               Tensor(), ops::GradInto::overwrite);
          EXPECT_TRUE(expect_close("matmul_backward.dinp (dweight overwritten)", d_dinp, dinp, dtype));
          EXPECT_TRUE(expect_close("matmul_backward.dweight overwritten", d_dweight, dweight, dtype));
          EXPECT_TRUE(expect_close("matmul_backward.dbias (dweight overwritten)", d_dbias, dbias, dtype));
        }
#if ZT_HAS_CUDA
    cuda::set_matmul_side_stream(previous);
  }
#endif
}

// The input gradient through the GELU that produced inp (the MLP's c_proj for c_fc): cuBLASLt's
// DGELU epilogue where C allows it (C % 8 == 0), a separate GELU-backward pass otherwise, and the
// separate pass when the epilogue is switched off; against the CPU reference on the same inputs.
TEST(CudaMatmul, BackwardThroughTheInputsGeluMatchesCpu) {
  ZT_REQUIRE_CUDA();
  Rng rng(104);
  for (const auto& [n, c, oc] : kSizes)
    for (DType dtype : {DType::f32, DType::bf16})
      for (WeightLayout layout : {WeightLayout::out_in, WeightLayout::in_out})
        for (bool epilogue : {true, false}) {
          SCOPED_TRACE(testing::Message() << dtype_name(dtype) << " N=" << n << " C=" << c << " OC=" << oc
                                          << " layout=" << int(layout) << " epilogue=" << epilogue);
          const Shape ws = weight_shape(layout, c, oc);
          const Tensor inp_pre = host_values({n, c}, dtype, rng, -3, 3);
          Tensor inp = Tensor::empty({n, c}, DType::f32);
          ops::gelu_forward(inp, inp_pre);
          inp = inp.to(dtype).to(DType::f32);  // what the device holds
          const Tensor weight = host_values(ws, dtype, rng, -0.2, 0.2), dout = host_values({n, oc}, dtype, rng);
          const Tensor dweight0 = host_values(ws, dtype, rng);
          const Tensor dinp = Tensor::empty({n, c}, DType::f32), dweight = dweight0.clone();
          ops::matmul_backward(dinp, dweight, Tensor(), dout, inp, weight, Tensor(), layout, Activation::none,
                               Activation::gelu_tanh, inp_pre);

          const Tensor d_dinp = poisoned({n, c}, dtype), d_dweight = on_device(dweight0, dtype);
          use_gelu_epilogue(epilogue);
          ops::matmul_backward(d_dinp, d_dweight, Tensor(), on_device(dout, dtype), on_device(inp, dtype),
                               on_device(weight, dtype), Tensor(), layout, Activation::none, Activation::gelu_tanh,
                               on_device(inp_pre, dtype));
          use_gelu_epilogue(true);
          EXPECT_TRUE(expect_close("matmul_backward.dinp through gelu", d_dinp, dinp, dtype));
          EXPECT_TRUE(expect_close("matmul_backward.dweight", d_dweight, dweight, dtype));
        }
}

// The backward with its bias gradient (and weight gradient) on the side stream gives the same bits
// as with everything on the compute stream, at shapes where the side work overlaps the input gradient's
// product (GPT-2's fc and its GELU; a padded OC), and it is finished when the op returns: dout is
// overwritten on the compute stream right after, before the gradients are read.
TEST(CudaMatmul, BackwardOnTheSideStreamMatchesOneStream) {
  ZT_REQUIRE_CUDA();
#if ZT_HAS_CUDA
  Rng rng(105);
  const std::tuple<int64_t, int64_t, int64_t> sizes[] = {{4096, 768, 3072}, {2048, 768, 1001}};
  for (const auto& [n, c, oc] : sizes)
    for (Activation act : {Activation::none, Activation::gelu_tanh})
      for (bool has_bias : {true, false}) {
        SCOPED_TRACE(testing::Message() << "N=" << n << " C=" << c << " OC=" << oc << " gelu=" << int(act)
                                        << " bias=" << has_bias);
        const DType dtype = DType::bf16;
        const Shape ws = weight_shape(WeightLayout::out_in, c, oc);
        const Tensor inp = on_device(host_values({n, c}, dtype, rng), dtype);
        const Tensor weight = on_device(host_values(ws, dtype, rng, -0.2, 0.2), dtype);
        const Tensor dout = host_values({n, oc}, dtype, rng), pre = on_device(host_values({n, oc}, dtype, rng, -3, 3), dtype);
        const Tensor dweight0 = host_values(ws, dtype, rng), dbias0 = host_values({oc}, dtype, rng);
        using cuda::SideStreamWork;
        const SideStreamWork works[] = {SideStreamWork::none, SideStreamWork::bias, SideStreamWork::weight_and_bias};
        Tensor grads[3][3];
        for (int w = 0; w < 3; ++w) {
          Tensor& dinp = grads[w][0] = poisoned({n, c}, dtype);
          Tensor& dweight = grads[w][1] = on_device(dweight0, dtype);
          Tensor& dbias = grads[w][2] = on_device(dbias0, dtype);
          const Tensor d_dout = on_device(dout, dtype);
          const SideStreamWork previous = cuda::set_matmul_side_stream(works[w]);
          ops::matmul_backward(dinp, dweight, has_bias ? dbias : Tensor(), d_dout, inp, weight,
                               act == Activation::none ? Tensor() : pre, WeightLayout::out_in, act);
          cuda::set_matmul_side_stream(previous);
          d_dout.zero_();
        }
        for (int w = 1; w < 3; ++w) {
          EXPECT_TRUE(bit_equal(grads[w][0], grads[0][0])) << "dinp, side-stream work " << w;
          EXPECT_TRUE(bit_equal(grads[w][1], grads[0][1])) << "dweight, side-stream work " << w;
          EXPECT_TRUE(bit_equal(grads[w][2], grads[0][2])) << "dbias, side-stream work " << w;
        }
        // And the one-stream run is the CPU's product (dweight; the other cases check the rest).
        const Tensor dweight = dweight0.clone(), dbias = dbias0.clone();
        ops::matmul_backward(Tensor(), dweight, has_bias ? dbias : Tensor(), dout, inp.to(Device::cpu()).to(DType::f32),
                             weight.to(Device::cpu()).to(DType::f32),
                             act == Activation::none ? Tensor() : pre.to(Device::cpu()).to(DType::f32),
                             WeightLayout::out_in, act);
        EXPECT_TRUE(expect_close("matmul_backward.dweight", grads[0][1], dweight, dtype));
        if (has_bias) {
          EXPECT_TRUE(expect_close("matmul_backward.dbias", grads[0][2], dbias, dtype));
        }
      }
#endif
}

// ZT_GEMM_SEARCH and ZT_MATMUL_SIDE_STREAM's values, and errors naming the variable. The search
// itself is exercised by running this file's tests under ZT_GEMM_SEARCH=wide (scripts/gpu-test
// does): every algorithm it picks is then checked against the CPU.
TEST(CudaMatmul, ChoicesFromTheEnvironment) {
#if ZT_HAS_CUDA
  EXPECT_EQ(cuda::side_stream_work_for("off"), cuda::SideStreamWork::none);
  EXPECT_EQ(cuda::side_stream_work_for("all"), cuda::SideStreamWork::weight_and_bias);
  const std::string side_message = error_of([] { cuda::side_stream_work_for("both"); });
  EXPECT_NE(side_message.find("ZT_MATMUL_SIDE_STREAM='both'"), std::string::npos) << side_message;
  EXPECT_NE(side_message.find("off, bias or all"), std::string::npos) << side_message;
  EXPECT_EQ(cuda::gemm_search_for("heuristic"), cuda::GemmSearch::heuristic);
  EXPECT_EQ(cuda::gemm_search_for("wide"), cuda::GemmSearch::wide);
  const std::string message = error_of([] { cuda::gemm_search_for("widest"); });
  EXPECT_NE(message.find("ZT_GEMM_SEARCH='widest'"), std::string::npos) << message;
  EXPECT_NE(message.find("heuristic or wide"), std::string::npos) << message;
#else
  GTEST_SKIP() << "this build has no CUDA backend";
#endif
}

TEST(CudaMatmul, OptionalGradientsAndErrors) {
  ZT_REQUIRE_CUDA();
  Rng rng(103);
  const Tensor inp = on_device(host_values({8, 16}, DType::f32, rng));
  const Tensor weight = on_device(host_values({24, 16}, DType::f32, rng));
  const Tensor dout = on_device(host_values({8, 24}, DType::f32, rng));
  const Tensor dinp = poisoned({8, 16}, DType::f32);
  ops::matmul_backward(dinp, Tensor(), Tensor(), dout, inp, weight, Tensor(), WeightLayout::out_in, Activation::none);
  EXPECT_TRUE(all_written(dinp));
  EXPECT_TRUE(throws_error_naming(
      [&] {
        ops::matmul_forward(Tensor::empty({8, 24}, DType::f32), Tensor(), inp, weight.to(Device::cpu()), Tensor(),
                            WeightLayout::out_in, Activation::none);
      },
      {"matmul_forward", "different devices"}));
  EXPECT_TRUE(throws_error_naming(
      [&] {
        const Tensor x = Tensor::zeros({8, 16}, DType::f64, Device::cuda());
        ops::matmul_forward(Tensor::empty({8, 24}, DType::f64, Device::cuda()), Tensor(), x,
                            Tensor::zeros({24, 16}, DType::f64, Device::cuda()), Tensor(), WeightLayout::out_in,
                            Activation::none);
      },
      {"matmul_forward", "f32 or bf16", "f64"}));
}

}  // namespace
}  // namespace zt
