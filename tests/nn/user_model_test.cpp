// A user-defined model that is not a transformer trains through the same path.
#include <gtest/gtest.h>

#include "../../examples/mlp_regressor.hpp"
#include "zt/nn/loss.hpp"
#include "zt/optim/adamw.hpp"
#include "zt/zero/flat_parameters.hpp"

namespace zt {
namespace {

TEST(UserModel, MlpRegressorLearnsItsTarget) {
  auto model = examples::make_mlp_regressor(4, 32, 3);
  zero::FlatParameters flat(*model, DType::f32, Device::cpu());
  optim::AdamW adamw({0.9, 0.999, 1e-8, 0.0, true});
  nn::MSELoss loss_fn;
  Rng rng(5);
  Tensor x, y;
  examples::make_regression_batch(x, y, 512, 4, rng);
  const double initial = nn::MSELoss().forward(model->forward(x), y);
  model->backward(Tensor::zeros({512, 1}, DType::f32));  // close the pending forward
  for (int step = 0; step < 300; ++step) {
    examples::make_regression_batch(x, y, 128, 4, rng);
    flat.grad().zero_();
    loss_fn.forward(model->forward(x), y);
    model->backward(loss_fn.backward());
    adamw.step({{0, flat.data(), flat.grad()}}, 3e-3, 1.0);
  }
  examples::make_regression_batch(x, y, 512, 4, rng);
  const double final_loss = nn::MSELoss().forward(model->forward(x), y);
  EXPECT_LT(final_loss, 0.05 * initial) << "initial " << initial << " final " << final_loss;
}

TEST(UserModel, HooksSeeEveryModuleAndEveryGradient) {
  auto model = examples::make_mlp_regressor(3, 8, 1);
  auto hooks = std::make_shared<nn::ModuleHooks>();
  int forwards = 0, backwards = 0, ready = 0;
  hooks->before_forward = [&](nn::Module&) { ++forwards; };
  hooks->after_backward = [&](nn::Module&) { ++backwards; };
  hooks->grad_ready = [&](nn::Parameter& p) {
    ++ready;
    EXPECT_TRUE(p.grad.defined());
  };
  model->add_hooks_recursive(hooks);
  Rng rng(2);
  Tensor x, y;
  examples::make_regression_batch(x, y, 4, 3, rng);
  nn::MSELoss loss_fn;
  loss_fn.forward(model->forward(x), y);
  model->backward(loss_fn.backward());
  int modules = 0;
  model->visit([&](const std::string&, nn::Module&) { ++modules; });
  EXPECT_EQ(forwards, modules);
  EXPECT_EQ(backwards, modules);
  EXPECT_EQ(ready, int(model->parameters().size()));
}

// A parameter used twice (a tied weight) is ready only after its second backward.
TEST(UserModel, TiedParameterIsReadyAfterItsLastUse) {
  auto first = std::make_shared<nn::Linear>(nn::LinearOptions{4, 4, false});
  auto second = std::make_shared<nn::Linear>(nn::LinearOptions{4, 4, false}, first->weight);
  nn::Sequential model({first, second});
  Rng rng(3);
  model.init_parameters(rng);
  auto hooks = std::make_shared<nn::ModuleHooks>();
  std::vector<std::string> events;
  hooks->after_backward = [&](nn::Module& m) { events.push_back(m.type_name()); };
  hooks->grad_ready = [&](nn::Parameter&) { events.push_back("ready"); };
  model.add_hooks_recursive(hooks);
  Tensor x = Tensor::empty({2, 4}, DType::f32);
  fill_normal(x, 0, 1, rng);
  model.forward(x);
  model.backward(Tensor::zeros({2, 4}, DType::f32).clone());
  // second's backward, then first's (which completes the weight), then the Sequential.
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0], "Linear");
  EXPECT_EQ(events[1], "ready");
  EXPECT_EQ(events[2], "Linear");
  EXPECT_EQ(model.named_parameters().size(), 1u);
}

}  // namespace
}  // namespace zt
