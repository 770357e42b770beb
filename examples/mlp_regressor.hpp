// A model that is not a transformer, built from nn parts: an MLP regressor
// y (N, 1) = Linear(GELU(Linear(x (N, D)))) trained on a smooth target function. It trains
// through the same Module/optimizer path as the language models (and, under the engine, under
// any ZeRO stage) with no change.
#pragma once

#include <cmath>
#include <memory>

#include "zt/core/random.hpp"
#include "zt/nn/containers.hpp"
#include "zt/nn/layers.hpp"

namespace zt::examples {

inline std::shared_ptr<nn::Sequential> make_mlp_regressor(int64_t inputs, int64_t hidden, uint64_t seed) {
  auto model = std::make_shared<nn::Sequential>();
  model->add(std::make_shared<nn::Linear>(
      nn::LinearOptions{inputs, hidden, true, ops::WeightLayout::out_in, ops::Activation::gelu_tanh, 0.5}));
  model->add(std::make_shared<nn::Residual>(std::make_shared<nn::Linear>(
      nn::LinearOptions{hidden, hidden, true, ops::WeightLayout::out_in, ops::Activation::gelu_tanh, 0.1})));
  model->add(std::make_shared<nn::Linear>(
      nn::LinearOptions{hidden, 1, true, ops::WeightLayout::out_in, ops::Activation::none, 0.1}));
  Rng rng(seed);
  model->init_parameters(rng);
  return model;
}

// x (N, D) uniform in [-1, 1]; y (N, 1) = sin(2 x0) + x1 * x2 (zero beyond the given inputs).
inline void make_regression_batch(Tensor& x, Tensor& y, int64_t n, int64_t d, Rng& rng) {
  x = Tensor::empty({n, d}, DType::f32);
  y = Tensor::empty({n, 1}, DType::f32);
  fill_uniform(x, -1.0, 1.0, rng);
  const float* xp = x.data<float>();
  for (int64_t i = 0; i < n; ++i) {
    const float* row = xp + i * d;
    y.data<float>()[i] = std::sin(2.0f * row[0]) + (d > 2 ? row[1] * row[2] : 0.0f);
  }
}

}  // namespace zt::examples
