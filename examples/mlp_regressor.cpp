// Trains the MLP regressor of mlp_regressor.hpp with AdamW and prints its loss.
#include <cstdio>

#include "mlp_regressor.hpp"
#include "zt/nn/loss.hpp"
#include "zt/optim/adamw.hpp"
#include "zt/zero/flat_parameters.hpp"

int main() {
  using namespace zt;
  auto model = examples::make_mlp_regressor(4, 64, 7);
  zero::FlatParameters flat(*model, DType::f32, Device::cpu());
  optim::AdamW adamw({0.9, 0.999, 1e-8, 0.0, true});
  nn::MSELoss loss_fn;
  Rng data_rng(1);
  Tensor x, y;
  for (int step = 1; step <= 500; ++step) {
    examples::make_regression_batch(x, y, 128, 4, data_rng);
    flat.grad().zero_();
    const double loss = loss_fn.forward(model->forward(x), y);
    model->backward(loss_fn.backward());
    adamw.step({{0, flat.data(), flat.grad()}}, 3e-3, 1.0);
    if (step % 100 == 0) std::printf("step %d  mse %.5f\n", step, loss);
  }
  return 0;
}
