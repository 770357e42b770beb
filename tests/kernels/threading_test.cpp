// The kernels with one and two OpenMP threads agree: the per-thread partial sums of the parameter
// gradients and the threaded row loops change only the rounding.
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <string>

#include "gradcheck.hpp"
#include "zt/kernels/ops.hpp"

namespace zt {
namespace {

using test::random_tensor;
using test::Rng;
using test::values;

using Results = std::map<std::string, std::vector<double>>;

// Runs fn (which fills named results) under 1 and 2 threads and compares them.
void expect_same_with_1_and_2_threads(const std::function<Results()>& fn, double tol) {
  Results one, two;
  test::with_threads(1, [&] { one = fn(); });
  test::with_threads(2, [&] { two = fn(); });
  ASSERT_EQ(one.size(), two.size());
  for (const auto& [name, v] : one) EXPECT_TRUE(test::close_by_norm(two.at(name), v, tol)) << name;
}

TEST(Threads, MatmulAgrees) {
  expect_same_with_1_and_2_threads([] {
    Rng rng(91);
    const int64_t n = 67, c = 45, oc = 39;
    const Tensor inp = random_tensor({n, c}, DType::f32, rng), w = random_tensor({c, oc}, DType::f32, rng);
    const Tensor b = random_tensor({oc}, DType::f32, rng), dout = random_tensor({n, oc}, DType::f32, rng);
    const Tensor out = Tensor::empty({n, oc}, DType::f32), pre = Tensor::empty({n, oc}, DType::f32);
    ops::matmul_forward(out, pre, inp, w, b, ops::WeightLayout::in_out, ops::Activation::gelu_tanh);
    const Tensor dinp = Tensor::empty({n, c}, DType::f32);
    const Tensor dw = Tensor::zeros({c, oc}, DType::f32), db = Tensor::zeros({oc}, DType::f32);
    ops::matmul_backward(dinp, dw, db, dout, inp, w, pre, ops::WeightLayout::in_out, ops::Activation::gelu_tanh);
    return Results{{"out", values(out)}, {"dinp", values(dinp)}, {"dweight", values(dw)}, {"dbias", values(db)}};
  }, 1e-6);
}

TEST(Threads, NormsAgree) {
  expect_same_with_1_and_2_threads([] {
    Rng rng(92);
    const int64_t n = 53, c = 70;
    const Tensor x = random_tensor({n, c}, DType::f32, rng), w = random_tensor({c}, DType::f32, rng);
    const Tensor b = random_tensor({c}, DType::f32, rng), dy = random_tensor({n, c}, DType::f32, rng);
    const Tensor out = Tensor::empty({n, c}, DType::f32), mean = Tensor::empty({n}, DType::f32), rstd = Tensor::empty({n}, DType::f32);
    ops::layernorm_forward(out, mean, rstd, x, w, b, 1e-5);
    const Tensor dx = Tensor::empty({n, c}, DType::f32), dw = Tensor::zeros({c}, DType::f32), db = Tensor::zeros({c}, DType::f32);
    ops::layernorm_backward(dx, dw, db, dy, x, w, mean, rstd);
    const Tensor rout = Tensor::empty({n, c}, DType::f32), rrstd = Tensor::empty({n}, DType::f32);
    ops::rmsnorm_forward(rout, rrstd, x, w, 1e-6);
    const Tensor rdx = Tensor::empty({n, c}, DType::f32), rdw = Tensor::zeros({c}, DType::f32);
    ops::rmsnorm_backward(rdx, rdw, dy, x, w, rrstd);
    return Results{{"ln_out", values(out)}, {"ln_dx", values(dx)}, {"ln_dw", values(dw)}, {"ln_db", values(db)},
                   {"rms_out", values(rout)}, {"rms_dx", values(rdx)}, {"rms_dw", values(rdw)}};
  }, 1e-6);
}

TEST(Threads, AttentionAgrees) {
  expect_same_with_1_and_2_threads([] {
    Rng rng(93);
    const int64_t b = 3, t = 11, nh = 4, nkv = 2, hd = 8;
    const Tensor qkv = random_tensor({b, t, (nh + 2 * nkv) * hd}, DType::f32, rng);
    const Tensor dout = random_tensor({b, t, nh * hd}, DType::f32, rng);
    const Tensor out = Tensor::empty({b, t, nh * hd}, DType::f32), att = Tensor::empty({b, nh, t, t}, DType::f32);
    ops::attention_forward(out, att, qkv, nh, nkv);
    const Tensor dqkv = Tensor::empty(qkv.shape(), DType::f32);
    ops::attention_backward(dqkv, dout, qkv, out, att, nh, nkv);
    return Results{{"out", values(out)}, {"att", values(att)}, {"dqkv", values(dqkv)}};
  }, 1e-6);
}

TEST(Threads, CrossEntropyEmbeddingAdamWAgree) {
  expect_same_with_1_and_2_threads([] {
    Rng rng(94);
    const int64_t n = 29, v = 301, c = 33;
    const Tensor logits = random_tensor({n, v}, DType::f32, rng, -5.0, 5.0);
    std::vector<int32_t> t(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) t[size_t(i)] = i % 4 == 0 ? ops::kIgnoreIndex : rng.integer(0, int32_t(v));
    const Tensor losses = Tensor::empty({n}, DType::f32), dlogits = Tensor::empty({n, v}, DType::f32);
    const int64_t counted = ops::cross_entropy_fused(losses, dlogits, logits, Tensor::from_ints({n}, t), 1.0 / 21);
    const Tensor ids = test::random_ids(n, 0, int32_t(v), rng), table = random_tensor({v, c}, DType::f32, rng);
    const Tensor dy = random_tensor({n, c}, DType::f32, rng), emb = Tensor::empty({n, c}, DType::f32);
    ops::embedding_forward(emb, ids, table, false);
    const Tensor dtable = Tensor::zeros({v, c}, DType::f32);
    ops::embedding_backward(dtable, dy, ids);
    const Tensor p = random_tensor({999}, DType::f32, rng), g = random_tensor({999}, DType::f32, rng);
    const Tensor m = Tensor::zeros({999}, DType::f32), s = Tensor::zeros({999}, DType::f32);
    ops::AdamWParams hp;
    hp.weight_decay = 0.1;
    ops::adamw_step(p, g, m, s, hp, 0.5);
    return Results{{"losses", values(losses)}, {"dlogits", values(dlogits)}, {"counted", {double(counted)}},
                   {"emb", values(emb)}, {"dtable", values(dtable)}, {"param", values(p)},
                   {"sum_squares", {ops::sum_squares(dlogits)}}};
  }, 1e-6);
}

}  // namespace
}  // namespace zt
