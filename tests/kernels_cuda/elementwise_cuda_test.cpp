// CUDA activations, embedding, cross-entropy, AdamW, casts and reductions against the CPU
// reference, f32 and bf16, outputs poisoned first. Letters: N rows, C channels, V vocabulary.
#include <gtest/gtest.h>

#include <cmath>

#include "cuda_compare.hpp"
#include "zt/kernels/ops.hpp"

namespace zt {
namespace {

using namespace test;

TEST(CudaActivations, GeluMatchesCpu) {
  ZT_REQUIRE_CUDA();
  Rng rng(401);
  for (DType dtype : {DType::f32, DType::bf16})
    for (int64_t n : {1, 1000, 100003}) {
      SCOPED_TRACE(testing::Message() << dtype_name(dtype) << " n=" << n);
      const Tensor x = host_values({n}, dtype, rng, -4, 4), dy = host_values({n}, dtype, rng);
      const Tensor y = Tensor::empty({n}, DType::f32), dx = Tensor::empty({n}, DType::f32);
      const Tensor d_y = poisoned({n}, dtype), d_dx = poisoned({n}, dtype);
      const Tensor d_x = on_device(x, dtype), d_dy = on_device(dy, dtype);

      ops::gelu_forward(y, x);
      ops::gelu_forward(d_y, d_x);
      EXPECT_TRUE(expect_close("gelu_forward", d_y, y, dtype));
      ops::gelu_backward(dx, dy, x);
      ops::gelu_backward(d_dx, d_dy, d_x);
      EXPECT_TRUE(expect_close("gelu_backward", d_dx, dx, dtype));
    }
}

// gate_up (N, 2H): hidden sizes of whole 16-byte chunks (the vectorized rows) and not (element by
// element), in place and not.
TEST(CudaActivations, SwigluOnPackedRowsMatchesCpu) {
  ZT_REQUIRE_CUDA();
  Rng rng(403);
  for (DType dtype : {DType::f32, DType::bf16})
    for (const auto& [n, h] : {std::pair<int64_t, int64_t>{1, 8}, {37, 5632}, {129, 1001}}) {
      SCOPED_TRACE(testing::Message() << dtype_name(dtype) << " N=" << n << " H=" << h);
      const Tensor gate_up = host_values({n, 2 * h}, dtype, rng, -4, 4), dy = host_values({n, h}, dtype, rng);
      const Tensor y = Tensor::empty({n, h}, DType::f32), dgate_up = Tensor::empty({n, 2 * h}, DType::f32);
      ops::swiglu_forward(y, gate_up);
      ops::swiglu_backward(dgate_up, dy, gate_up);
      const Tensor d_gate_up = on_device(gate_up, dtype), d_dy = on_device(dy, dtype);
      const Tensor d_y = poisoned({n, h}, dtype), d_dgate_up = poisoned({n, 2 * h}, dtype);
      ops::swiglu_forward(d_y, d_gate_up);
      EXPECT_TRUE(expect_close("swiglu_forward", d_y, y, dtype));
      ops::swiglu_backward(d_dgate_up, d_dy, d_gate_up);
      EXPECT_TRUE(expect_close("swiglu_backward", d_dgate_up, dgate_up, dtype));
      ops::swiglu_backward(d_gate_up, d_dy, d_gate_up);
      EXPECT_TRUE(expect_close("swiglu_backward in place", d_gate_up, dgate_up, dtype));
    }
}

// Views that start one element into their storage are not 16-byte aligned: the maps then run
// element by element, and must give the same results.
TEST(CudaActivations, UnalignedViewsMatchCpu) {
  ZT_REQUIRE_CUDA();
  Rng rng(12);
  const int64_t n = 4099;
  for (DType dtype : {DType::f32, DType::bf16}) {
    SCOPED_TRACE(dtype_name(dtype));
    const Tensor x = host_values({n}, dtype, rng, -4, 4), up = host_values({n}, dtype, rng, -2, 2);
    auto unaligned = [&](const Tensor& host) {
      const Tensor storage = poisoned({n + 1}, dtype);
      const Tensor view = storage.view(1, {n});
      if (host.defined()) view.copy_from(host.to(dtype).to(Device::cuda()));
      return view;
    };
    const Tensor d_x = unaligned(x), d_up = unaligned(up), d_y = unaligned(Tensor()), d_sum = unaligned(Tensor());
    const Tensor y = Tensor::empty({n}, DType::f32), sum = Tensor::empty({n}, DType::f32);
    ops::gelu_forward(y, x);
    ops::gelu_forward(d_y, d_x);
    EXPECT_TRUE(expect_close("gelu_forward (unaligned)", d_y, y, dtype));
    ops::add(sum, x, up);
    ops::add(d_sum, d_x, d_up);
    EXPECT_TRUE(expect_close("add (unaligned)", d_sum, sum, dtype));
  }
}

// zero_ranges (the gradient buffer's small slots cleared in one launch): each range zeroed, and
// nothing else touched, against the CPU op on the same values; ranges of 1, 2 and 3 elements,
// ends off 16-byte boundaries, an empty one, a long one; bf16 and f32.
TEST(CudaElementwise, ZeroRangesMatchesCpu) {
  ZT_REQUIRE_CUDA();
  Rng rng(120);
  const std::vector<int64_t> bounds = {0, 3, 5, 7, 9, 10, 100, 1100, 1101, 1101, 1103, 1105, 4097, 99999};
  Tensor ranges = Tensor::empty({int64_t(bounds.size() / 2), 2}, DType::i64);
  std::copy(bounds.begin(), bounds.end(), ranges.data<int64_t>());
  for (DType dtype : {DType::bf16, DType::f32}) {
    SCOPED_TRACE(dtype_name(dtype));
    const Tensor x = host_values({100003}, dtype, rng, 0.5, 1.5);  // no zeros of its own
    const Tensor want = x.clone();
    ops::zero_ranges(want, ranges);
    const Tensor d_x = on_device(x, dtype);
    ops::zero_ranges(d_x, ranges.to(Device::cuda()));
    const std::vector<double> got = host_doubles(d_x), expected = host_doubles(want);
    ASSERT_EQ(got.size(), expected.size());
    int64_t zeros = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_EQ(got[i], expected[i]) << "element " << i;
      zeros += got[i] == 0.0;
    }
    EXPECT_EQ(zeros, 3 + 2 + 1 + 1000 + 0 + 2 + 95902);
  }
}

TEST(CudaEmbedding, GatherAndScatterAddMatchCpu) {
  ZT_REQUIRE_CUDA();
  Rng rng(402);
  // c = 96: bf16 rows of whole 16-byte chunks (8 values an atomic); c = 100: one value an atomic.
  for (DType dtype : {DType::f32, DType::bf16})
    for (int64_t c : {96, 100}) {
      SCOPED_TRACE(testing::Message() << dtype_name(dtype) << " C=" << c);
      const int64_t n = 300, v = 50;  // ids repeat: the scatter-add must not lose any
      const Tensor ids = random_ids(n, 0, int32_t(v), rng);
      const Tensor weight = host_values({v, c}, dtype, rng), base = host_values({n, c}, dtype, rng);
      const Tensor d_ids = ids.to(Device::cuda()), d_weight = on_device(weight, dtype);
      const Tensor out = Tensor::empty({n, c}, DType::f32);
      ops::embedding_forward(out, ids, weight, false);
      const Tensor d_out = poisoned({n, c}, dtype);
      ops::embedding_forward(d_out, d_ids, d_weight, false);
      EXPECT_TRUE(expect_close("embedding_forward", d_out, out, dtype));

      const Tensor acc = base.clone(), d_acc = on_device(base, dtype);
      ops::embedding_forward(acc, ids, weight, true);
      ops::embedding_forward(d_acc, d_ids, d_weight, true);
      EXPECT_TRUE(expect_close("embedding_forward (accumulate)", d_acc, acc, dtype));

      const Tensor dout = host_values({n, c}, dtype, rng), dweight0 = host_values({v, c}, dtype, rng);
      const Tensor dweight = dweight0.clone(), d_dweight = on_device(dweight0, dtype);
      ops::embedding_backward(dweight, dout, ids);
      ops::embedding_backward(d_dweight, on_device(dout, dtype), d_ids);
      EXPECT_TRUE(expect_close("embedding_backward", d_dweight, dweight, dtype));
    }
}

TEST(CudaCrossEntropy, FusedLossAndGradientMatchCpu) {
  ZT_REQUIRE_CUDA();
  Rng rng(403);
  for (DType dtype : {DType::f32, DType::bf16})
    // 8192, 32000 and 50304 rows are whole 16-byte chunks, read once: into shared memory where
    // the row takes at most 112 KiB (all three in bf16, 8192 in f32), else into registers (f32's
    // 32000 and 50304); the others take the two-pass kernel.
    for (int64_t v : {5, 1000, 8192, 32000, 50257, 50304}) {
      const int64_t n = v > 10000 ? 9 : 33;
      SCOPED_TRACE(testing::Message() << dtype_name(dtype) << " N=" << n << " V=" << v);
      const Tensor logits = host_values({n, v}, dtype, rng, -8, 8);
      std::vector<int32_t> t(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) t[size_t(i)] = i % 4 == 1 ? ops::kIgnoreIndex : rng.integer(0, int32_t(v));
      const Tensor targets = Tensor::from_ints({n}, t), d_targets = targets.to(Device::cuda());
      const double dloss = 1.0 / 7;
      const Tensor losses = Tensor::empty({n}, DType::f32), dlogits = Tensor::empty({n, v}, DType::f32);
      const int64_t counted = ops::cross_entropy_fused(losses, dlogits, logits, targets, dloss);

      const Tensor d_logits = on_device(logits, dtype);
      const Tensor d_losses = poisoned({n}, DType::f32), d_dlogits = poisoned({n, v}, dtype);
      EXPECT_EQ(ops::cross_entropy_fused(d_losses, d_dlogits, d_logits, d_targets, dloss), counted);
      EXPECT_TRUE(expect_close("cross_entropy_fused.losses", d_losses, losses, dtype, 1e-5));
      EXPECT_TRUE(expect_close("cross_entropy_fused.dlogits", d_dlogits, dlogits, dtype));

      const Tensor d_losses2 = poisoned({n}, DType::f32);
      EXPECT_EQ(ops::cross_entropy_forward(d_losses2, d_logits, d_targets), counted);
      EXPECT_TRUE(expect_close("cross_entropy_forward.losses", d_losses2, losses, dtype, 1e-5));

      // In place: the gradient overwrites the logits.
      const Tensor in_place = on_device(logits, dtype), d_losses3 = poisoned({n}, DType::f32);
      ops::cross_entropy_fused(d_losses3, in_place, in_place, d_targets, dloss);
      EXPECT_TRUE(expect_close("cross_entropy_fused.dlogits (in place)", in_place, dlogits, dtype));
      EXPECT_TRUE(expect_close("cross_entropy_fused.losses (in place)", d_losses3, losses, dtype, 1e-5));
    }
}

// The counting form on the GPU: the count and the factor made by a kernel from the device's
// targets, read by the loss kernel; against the CPU's counting form.
TEST(CudaCrossEntropy, CountingFormMatchesCpu) {
  ZT_REQUIRE_CUDA();
  Rng rng(404);
  for (DType dtype : {DType::f32, DType::bf16})
    for (int64_t v : {1000, 50304}) {
      for (int64_t n : {int64_t(3000), int64_t(9)}) {
        SCOPED_TRACE(testing::Message() << dtype_name(dtype) << " N=" << n << " V=" << v);
        const Tensor logits = host_values({n, v}, dtype, rng, -8, 8);
        std::vector<int32_t> t(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) t[size_t(i)] = i % 3 == 1 ? ops::kIgnoreIndex : rng.integer(0, int32_t(v));
        const Tensor targets = Tensor::from_ints({n}, t);
        const double grad_scale = 0.37;
        const Tensor losses = Tensor::empty({n}, DType::f32), dlogits = Tensor::empty({n, v}, DType::f32);
        const Tensor count_and_dloss = Tensor::empty({2}, DType::f32);
        ops::cross_entropy_fused_counting(losses, dlogits, logits, targets, grad_scale, count_and_dloss);

        const Tensor d_logits = on_device(logits, dtype);
        const Tensor d_losses = poisoned({n}, DType::f32), d_dlogits = poisoned({n, v}, dtype);
        const Tensor d_count = poisoned({2}, DType::f32);
        ops::cross_entropy_fused_counting(d_losses, d_dlogits, d_logits, targets.to(Device::cuda()), grad_scale, d_count);
        EXPECT_EQ(host_doubles(d_count), host_doubles(count_and_dloss));
        EXPECT_TRUE(expect_close("cross_entropy_fused_counting.losses", d_losses, losses, dtype, 1e-5));
        EXPECT_TRUE(expect_close("cross_entropy_fused_counting.dlogits", d_dlogits, dlogits, dtype));
      }
    }
}

TEST(CudaCrossEntropy, TargetOutsideTheVocabularyGivesNaN) {
  ZT_REQUIRE_CUDA();
  const Tensor logits = Tensor::zeros({2, 4}, DType::f32, Device::cuda());
  const Tensor losses = Tensor::empty({2}, DType::f32, Device::cuda());
  ops::cross_entropy_forward(losses, logits, Tensor::from_ints({2}, {1, 9}).to(Device::cuda()));
  const std::vector<double> l = host_doubles(losses);
  EXPECT_NEAR(l[0], std::log(4.0), 1e-6);
  EXPECT_TRUE(std::isnan(l[1]));
}

TEST(CudaAdamW, StepMatchesCpu) {
  ZT_REQUIRE_CUDA();
  Rng rng(404);
  for (int64_t n : {7, 1000003}) {
    for (int64_t offset : {0, 1}) {  // 1: views off the 16-byte boundary take the scalar path
      SCOPED_TRACE(testing::Message() << "n=" << n << " offset=" << offset);
      const Tensor param = host_values({n + offset}, DType::f32, rng), grad = host_values({n + offset}, DType::f32, rng);
      const Tensor m = host_values({n + offset}, DType::f32, rng, -0.1, 0.1);
      const Tensor v = host_values({n + offset}, DType::f32, rng, 0.0, 0.01);
      ops::AdamWParams p;
      p.lr = 1e-3, p.beta1 = 0.9, p.beta2 = 0.95, p.eps = 1e-8, p.weight_decay = 0.1, p.step = 3;
      auto tail = [&](const Tensor& t) { return t.view(size_t(offset), {n}); };
      const Tensor d_param = on_device(param), d_grad = on_device(grad), d_m = on_device(m), d_v = on_device(v);
      ops::adamw_step(tail(param), tail(grad), tail(m), tail(v), p, 0.5);
      ops::adamw_step(tail(d_param), tail(d_grad), tail(d_m), tail(d_v), p, 0.5);
      EXPECT_TRUE(expect_close("adamw_step.param", tail(d_param), tail(param), DType::f32, 1e-6));
      EXPECT_TRUE(expect_close("adamw_step.exp_avg", tail(d_m), tail(m), DType::f32, 1e-6));
      EXPECT_TRUE(expect_close("adamw_step.exp_avg_sq", tail(d_v), tail(v), DType::f32, 1e-6));
    }
  }
}

// Mixed precision in one pass: bf16/f16 gradients read as they are, the rounded parameters written
// into param_out; against the CPU's same step (which takes the same forms), every combination of
// gradient and copy dtype, aligned and not.
TEST(CudaAdamW, MixedPrecisionStepMatchesCpu) {
  ZT_REQUIRE_CUDA();
  Rng rng(406);
  const int64_t n = 100003;
  for (DType grad_dtype : {DType::f32, DType::bf16, DType::f16})
    for (DType out_dtype : {DType::f32, DType::bf16, DType::f16})
      for (int64_t offset : {0, 1}) {
        SCOPED_TRACE(testing::Message() << "grad " << dtype_name(grad_dtype) << " out " << dtype_name(out_dtype)
                                        << " offset=" << offset);
        const Tensor param = host_values({n + offset}, DType::f32, rng);
        const Tensor grad = host_values({n + offset}, DType::f32, rng).to(grad_dtype);
        const Tensor m = host_values({n + offset}, DType::f32, rng, -0.1, 0.1);
        const Tensor v = host_values({n + offset}, DType::f32, rng, 0.0, 0.01);
        const Tensor out = Tensor::empty({n + offset}, out_dtype);
        ops::AdamWParams p;
        p.lr = 1e-3, p.beta1 = 0.9, p.beta2 = 0.95, p.eps = 1e-8, p.weight_decay = 0.1, p.step = 5;
        auto tail = [&](const Tensor& t) { return t.view(size_t(offset), {n}); };
        const Tensor d_param = on_device(param), d_grad = on_device(grad), d_m = on_device(m), d_v = on_device(v);
        const Tensor d_out = poisoned({n + offset}, out_dtype);
        ops::adamw_step(tail(param), tail(grad), tail(m), tail(v), p, 0.25, tail(out));
        ops::adamw_step(tail(d_param), tail(d_grad), tail(d_m), tail(d_v), p, 0.25, tail(d_out));
        EXPECT_TRUE(expect_close("adamw_step (mixed).param", tail(d_param), tail(param), DType::f32, 1e-6));
        EXPECT_TRUE(expect_close("adamw_step (mixed).exp_avg_sq", tail(d_v), tail(v), DType::f32, 1e-6));
        // The copy is the rounded parameter: to a unit in the last place of its dtype.
        EXPECT_TRUE(expect_close("adamw_step (mixed).param_out", tail(d_out), tail(out), out_dtype,
                                 out_dtype == DType::f32 ? 1e-6 : 1e-2));
      }
}

// The queued scale (the clip factor left on the GPU) gives the same bits as the same factor passed
// from the host, and a non-finite one leaves every buffer as it was.
TEST(CudaAdamW, QueuedScaleMatchesTheHostScaleAndSkipsWhenNotFinite) {
  ZT_REQUIRE_CUDA();
  Rng rng(408);
  const int64_t n = 100003;
  ops::AdamWParams p;
  p.lr = 1e-3, p.beta1 = 0.9, p.beta2 = 0.95, p.eps = 1e-8, p.weight_decay = 0.1, p.step = 4;
  const Tensor param = on_device(host_values({n}, DType::f32, rng));
  const Tensor grad = on_device(host_values({n}, DType::f32, rng).to(DType::bf16), DType::bf16);
  const Tensor m = on_device(host_values({n}, DType::f32, rng, -0.1, 0.1));
  const Tensor v = on_device(host_values({n}, DType::f32, rng, 0.0, 0.01));
  const Tensor out = on_device(host_values({n}, DType::bf16, rng), DType::bf16);
  auto copies = [&] { return std::vector<Tensor>{param.clone(), m.clone(), v.clone(), out.clone()}; };
  const float factor = 0.37f;
  const Tensor scale = on_device(Tensor::from_floats({1}, {factor}));
  std::vector<Tensor> from_host = copies(), queued = copies();
  ops::adamw_step(from_host[0], grad, from_host[1], from_host[2], p, double(0.5f * factor), from_host[3]);
  ops::adamw_step(queued[0], grad, queued[1], queued[2], p, 0.5, queued[3], scale);
  for (size_t i = 0; i < queued.size(); ++i)
    EXPECT_EQ(host_doubles(queued[i]), host_doubles(from_host[i])) << "buffer " << i;
  for (float bad : {std::nanf(""), INFINITY}) {
    scale.copy_from(Tensor::from_floats({1}, {bad}));
    std::vector<Tensor> skipped = copies();
    ops::adamw_step(skipped[0], grad, skipped[1], skipped[2], p, 0.5, skipped[3], scale);
    EXPECT_EQ(host_doubles(skipped[0]), host_doubles(param)) << bad;
    EXPECT_EQ(host_doubles(skipped[1]), host_doubles(m)) << bad;
    EXPECT_EQ(host_doubles(skipped[2]), host_doubles(v)) << bad;
    EXPECT_EQ(host_doubles(skipped[3]), host_doubles(out)) << bad;
  }
}

TEST(CudaAdamW, ManyBuffersInOnePassMatchCpu) {
  ZT_REQUIRE_CUDA();
  Rng rng(407);
  ops::AdamWParams p;
  p.lr = 3e-4, p.beta1 = 0.9, p.beta2 = 0.999, p.eps = 1e-8, p.weight_decay = 0.01, p.step = 7;
  // 70 buffers (two launches), sizes from 1 to ~70k, some views off the 16-byte boundary.
  std::vector<ops::AdamWBuffers> host, device;
  for (int i = 0; i < 70; ++i) {
    const int64_t n = 1 + (int64_t(i) * 977) % 70001, offset = i % 3 == 0 ? 1 : 0;
    ops::AdamWBuffers h, d;
    Tensor* hs[4] = {&h.param, &h.grad, &h.exp_avg, &h.exp_avg_sq};
    Tensor* ds[4] = {&d.param, &d.grad, &d.exp_avg, &d.exp_avg_sq};
    for (int k = 0; k < 4; ++k) {
      const Tensor full = host_values({n + offset}, DType::f32, rng, k == 3 ? 0.0 : -1.0, 1.0);
      *hs[k] = full.view(size_t(offset), {n});
      *ds[k] = on_device(full).view(size_t(offset), {n});
    }
    host.push_back(h);
    device.push_back(d);
  }
  ops::adamw_step_many(host, p, 0.75);
  ops::adamw_step_many(device, p, 0.75);
  for (size_t i = 0; i < host.size(); ++i) {
    SCOPED_TRACE(testing::Message() << "buffer " << i);
    EXPECT_TRUE(expect_close("adamw_step_many.param", device[i].param, host[i].param, DType::f32, 1e-6));
    EXPECT_TRUE(expect_close("adamw_step_many.exp_avg_sq", device[i].exp_avg_sq, host[i].exp_avg_sq, DType::f32, 1e-6));
  }
}

TEST(CudaElementwise, CastsAddScaleAndReductionsMatchCpu) {
  ZT_REQUIRE_CUDA();
  Rng rng(405);
  const int64_t n = 100001;
  const Tensor x = random_tensor({n}, DType::f64, rng, -3, 3);
  for (DType from : {DType::f32, DType::f64, DType::bf16, DType::f16})
    for (DType to : {DType::f32, DType::f64, DType::bf16, DType::f16}) {
      SCOPED_TRACE(testing::Message() << dtype_name(from) << " -> " << dtype_name(to));
      const Tensor src = x.to(from);
      const Tensor ref = Tensor::empty({n}, to);
      ops::cast(ref, src);
      const Tensor out = poisoned({n}, to);
      ops::cast(out, src.to(Device::cuda()));
      EXPECT_EQ(host_doubles(out), host_doubles(ref));  // the same rounding, element for element
    }
  const Tensor staged = poisoned({n}, DType::bf16);
  ops::cast(staged, x.to(DType::f32));  // from the host into a device tensor
  EXPECT_EQ(host_doubles(staged), host_doubles(x.to(DType::f32).to(DType::bf16)));

  for (DType dtype : {DType::f32, DType::bf16}) {
    const Tensor a = host_values({n}, dtype, rng), b = host_values({n}, dtype, rng);
    const Tensor sum = Tensor::empty({n}, DType::f32);
    ops::add(sum, a, b);
    const Tensor d_a = on_device(a, dtype), d_sum = poisoned({n}, dtype);
    ops::add(d_sum, d_a, on_device(b, dtype));
    EXPECT_TRUE(expect_close("add", d_sum, sum, dtype));
    ops::add_(d_a, on_device(b, dtype));
    EXPECT_TRUE(expect_close("add_", d_a, sum, dtype));
    ops::scale_(sum, 0.25);
    ops::scale_(d_a, 0.25);
    EXPECT_TRUE(expect_close("scale_", d_a, sum, dtype));
    EXPECT_NEAR(ops::sum_squares(on_device(a, dtype)), ops::sum_squares(a), 1e-9 * ops::sum_squares(a));
    const Tensor d_pred = poisoned({n}, dtype), dpred = Tensor::empty({n}, DType::f32);
    const double mse = ops::mse_loss(dpred, a, b, 3.0);
    EXPECT_NEAR(ops::mse_loss(d_pred, on_device(a, dtype), on_device(b, dtype), 3.0), mse, 1e-9 * mse);
    EXPECT_TRUE(expect_close("mse_loss.dpred", d_pred, dpred, dtype));
    EXPECT_TRUE(ops::all_finite(on_device(a, dtype)));
  }
  {  // a bf16 gradient folded into an f32 buffer
    const Tensor acc = host_values({n}, DType::f32, rng), g = host_values({n}, DType::bf16, rng).to(DType::bf16);
    const Tensor d_acc = on_device(acc);
    ops::add_(acc, g);
    ops::add_(d_acc, g.to(Device::cuda()));
    EXPECT_TRUE(expect_close("add_ (bf16 into f32)", d_acc, acc, DType::f32));
  }
  Tensor with_nan = x.to(DType::f32);
  with_nan.data<float>()[n - 3] = NAN;
  EXPECT_FALSE(ops::all_finite(with_nan.to(Device::cuda())));
  with_nan.data<float>()[n - 3] = INFINITY;
  EXPECT_FALSE(ops::all_finite(with_nan.to(Device::cuda())));
}

// The gradient norm's queued pieces: the device sum into device memory is the sum that
// sum_squares returns, and the clip factor computed from it on the GPU has the CPU's bits.
TEST(CudaElementwise, QueuedSumOfSquaresAndClipScaleMatchCpu) {
  ZT_REQUIRE_CUDA();
  Rng rng(409);
  const Tensor x = on_device(host_values({1000003}, DType::f32, rng).to(DType::bf16), DType::bf16);
  const Tensor d_sum = on_device(Tensor::zeros({1}, DType::f64)), d_scale = poisoned({1}, DType::f32);
  ops::sum_squares_into(d_sum, x);
  const double sum = ops::sum_squares(x);
  EXPECT_EQ(host_doubles(d_sum)[0], sum);
  const Tensor h_sum = Tensor::zeros({1}, DType::f64), h_scale = Tensor::zeros({1}, DType::f32);
  h_sum.data<double>()[0] = sum;
  const double denominator = 4096.0, norm = std::sqrt(sum) / denominator;
  for (double max_norm : {0.0, norm / 7.0, norm * 2.0}) {
    SCOPED_TRACE(testing::Message() << "max_norm " << max_norm << ", norm " << norm);
    ops::clip_scale(d_scale, d_sum, max_norm, denominator);
    ops::clip_scale(h_scale, h_sum, max_norm, denominator);
    EXPECT_EQ(host_doubles(d_scale)[0], double(h_scale.data<float>()[0]));
  }
  d_sum.copy_from(Tensor::from_floats({1}, {INFINITY}, DType::f64));
  ops::clip_scale(d_scale, d_sum, 1.0, denominator);
  EXPECT_TRUE(std::isnan(host_doubles(d_scale)[0]));
}

TEST(CudaElementwise, PackAndUnpackColumns) {
  ZT_REQUIRE_CUDA();
  Rng rng(406);
  const Tensor a = host_values({9, 4}, DType::f32, rng), b = host_values({9, 2}, DType::f32, rng),
               c = host_values({9, 6}, DType::f32, rng);
  const Tensor packed = Tensor::empty({9, 12}, DType::f32);
  ops::pack_columns(packed, {a, b, c});
  const Tensor d_packed = poisoned({9, 12}, DType::f32);
  ops::pack_columns(d_packed, {on_device(a), on_device(b), on_device(c)});
  EXPECT_EQ(host_doubles(d_packed), host_doubles(packed));
  const Tensor pa = poisoned({9, 4}, DType::f32), pb = poisoned({9, 2}, DType::f32), pc = poisoned({9, 6}, DType::f32);
  ops::unpack_columns({pa, pb, pc}, d_packed);
  EXPECT_EQ(host_doubles(pa), host_doubles(a));
  EXPECT_EQ(host_doubles(pb), host_doubles(b));
  EXPECT_EQ(host_doubles(pc), host_doubles(c));
}

}  // namespace
}  // namespace zt
