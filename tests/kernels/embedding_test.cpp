// Token embedding: lookup (and lookup-add) against a naive copy, the scatter-add backward
// against finite differences with repeated ids, and id errors. Letters: N tokens, V vocabulary,
// C channels.
#include <gtest/gtest.h>

#include <tuple>

#include "gradcheck.hpp"
#include "zt/kernels/ops.hpp"

namespace zt {
namespace {

using test::random_tensor;
using test::Rng;
using test::values;

TEST(Embedding, ForwardCopiesRowsAndAccumulates) {
  Rng rng(51);
  for (const auto& [n, v, c] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 3}, {37, 11, 19}, {64, 300, 70}}) {
    for (DType dtype : {DType::f32, DType::f64}) {
      SCOPED_TRACE(testing::Message() << dtype_name(dtype) << " N=" << n << " V=" << v << " C=" << c);
      const Tensor ids = test::random_ids(n, 0, int32_t(v), rng);
      const Tensor weight = random_tensor({v, c}, dtype, rng);
      const Tensor out = Tensor::empty({n, c}, dtype);
      ops::embedding_forward(out, ids, weight, false);
      const std::vector<double> w = values(weight);
      const int32_t* id = ids.data<int32_t>();
      std::vector<double> expected(static_cast<size_t>(n * c));
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < c; ++j) expected[size_t(i * c + j)] = w[size_t(id[i] * c + j)];
      EXPECT_EQ(values(out), expected);  // a copy is exact
      // accumulate adds the rows to what out holds (token + position embeddings).
      const Tensor base = random_tensor({n, c}, dtype, rng);
      const Tensor sum = base.clone();
      ops::embedding_forward(sum, ids, weight, true);
      const std::vector<double> b = values(base);
      for (size_t i = 0; i < expected.size(); ++i) expected[i] = dtype == DType::f32 ? double(float(b[i]) + float(expected[i])) : b[i] + expected[i];
      EXPECT_EQ(values(sum), expected);
    }
  }
}

TEST(Embedding, BackwardMatchesFiniteDifferencesWithRepeatedIds) {
  const int64_t v = 6, c = 5;
  // Id 2 three times, id 4 twice, id 5 never: its row's gradient stays zero.
  const Tensor ids = Tensor::from_ints({8}, {2, 0, 4, 2, 1, 4, 3, 2});
  const int64_t n = ids.numel();
  Rng rng(52);
  const Tensor weight = random_tensor({v, c}, DType::f64, rng);
  const Tensor r = random_tensor({n, c}, DType::f64, rng);
  const Tensor out = Tensor::empty({n, c}, DType::f64), dweight = Tensor::empty({v, c}, DType::f64);
  auto loss = [&] {
    ops::embedding_forward(out, ids, weight, false);
    return test::sum_product(out, r);
  };
  auto backward = [&] { ops::embedding_backward(dweight, r, ids); };
  test::check_gradients({{"weight", weight, dweight, true}}, loss, backward);

  // Exactly: row 2 gets the sum of dout rows 0, 3 and 7; row 5 nothing.
  dweight.zero_();
  ops::embedding_backward(dweight, r, ids);
  const std::vector<double> dw = values(dweight), dy = values(r);
  for (int64_t j = 0; j < c; ++j) {
    EXPECT_DOUBLE_EQ(dw[size_t(2 * c + j)], dy[size_t(0 * c + j)] + dy[size_t(3 * c + j)] + dy[size_t(7 * c + j)]);
    EXPECT_EQ(dw[size_t(5 * c + j)], 0.0);
  }
}

// Channels past a multiple of the kernel's 16-wide blocks, many repeats: the scatter-add is
// race-free and exact in f64 with any thread count.
TEST(Embedding, BackwardScattersWideRows) {
  Rng rng(53);
  const int64_t n = 200, v = 7, c = 45;
  const Tensor ids = test::random_ids(n, 0, int32_t(v), rng);
  const Tensor dout = random_tensor({n, c}, DType::f64, rng);
  std::vector<double> expected(size_t(v * c), 0.0);
  const std::vector<double> dy = values(dout);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < c; ++j) expected[size_t(ids.data<int32_t>()[i] * c + j)] += dy[size_t(i * c + j)];
  for (int threads : {1, 2}) {
    test::with_threads(threads, [&] {
      const Tensor dweight = Tensor::zeros({v, c}, DType::f64);
      ops::embedding_backward(dweight, dout, ids);
      EXPECT_TRUE(test::close_by_norm(dweight, expected, 1e-14)) << threads << " threads";
    });
  }
}

TEST(Embedding, IdsOutsideTheVocabularyAreErrorsNamingIdAndPosition) {
  using test::throws_error_naming;
  const Tensor weight = Tensor::zeros({10, 4}, DType::f32), out = Tensor::zeros({3, 4}, DType::f32);
  EXPECT_TRUE(throws_error_naming([&] { ops::embedding_forward(out, Tensor::from_ints({3}, {1, 10, 2}), weight, false); },
                                  {"embedding_forward", "token id 10", "position 1", "[0, 10)"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::embedding_forward(out, Tensor::from_ints({3}, {1, 2, -1}), weight, false); },
                                  {"embedding_forward", "token id -1", "position 2"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::embedding_backward(weight, out, Tensor::from_ints({3}, {12, 0, 0})); },
                                  {"embedding_backward", "token id 12", "position 0"}));
  // Shapes and dtypes.
  EXPECT_TRUE(throws_error_naming([&] { ops::embedding_forward(out, Tensor::zeros({3}, DType::f32), weight, false); },
                                  {"embedding_forward", "ids", "f32", "i32"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::embedding_forward(out, Tensor::from_ints({2}, {1, 2}), weight, false); },
                                  {"embedding_forward", "out", "(2, 4)"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::embedding_forward(out.to(DType::f64), Tensor::from_ints({3}, {1, 2, 3}), weight, false); },
                                  {"embedding_forward", "out", "f64"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::embedding_forward(out, Tensor::from_ints({3}, {1, 2, 3}), weight.flatten(), false); },
                                  {"embedding_forward", "weight"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::embedding_backward(weight, out, Tensor::from_ints({1, 3}, {0, 1, 2})); },
                                  {"embedding_backward", "ids"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::embedding_backward(weight, Tensor::zeros({3, 5}, DType::f32), Tensor::from_ints({3}, {0, 1, 2})); },
                                  {"embedding_backward", "dout"}));
}

}  // namespace
}  // namespace zt
