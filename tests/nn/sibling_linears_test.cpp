// nn::SiblingLinears: the packed output and the gradients equal those of each member's own
// Linear; with the parameters in ZeRO's flat buffer (back to back) the group runs as one product
// and gives the same values; every member's hooks and parameter reports run once either way; a
// member with a bias, or weights apart, take the per-member path. Letters: N rows, C inputs.
#include <gtest/gtest.h>

#include <map>

#include "gradcheck.hpp"
#include "zt/nn/sibling_linears.hpp"
#include "zt/zero/flat_parameters.hpp"

namespace zt::nn {
namespace {

using test::close_by_norm;
using test::random_tensor;
using test::values;

constexpr int64_t N = 6, C = 10;
const std::vector<int64_t> kOuts = {8, 4, 4};  // q, k, v widths of a grouped-query layer

// The members registered one after another, as Attention registers q_proj, k_proj, v_proj.
class Projections : public Module {
 public:
  explicit Projections(bool bias) {
    const char* names[] = {"q_proj", "k_proj", "v_proj"};
    for (size_t i = 0; i < kOuts.size(); ++i)
      members.push_back(register_module(
          names[i], std::make_shared<Linear>(LinearOptions{C, kOuts[i], bias, ops::WeightLayout::out_in,
                                                           ops::Activation::none, 0.3})));
    siblings = std::make_unique<SiblingLinears>(members);
  }
  std::string type_name() const override { return "Projections"; }
  std::vector<std::shared_ptr<Linear>> members;
  std::unique_ptr<SiblingLinears> siblings;

 protected:
  Tensor forward_impl(const Tensor& x) override { return siblings->forward(x); }
  Tensor backward_impl(const Tensor& dy) override { return siblings->backward(dy); }
};

struct Outcome {
  std::vector<double> y, dx;
  std::map<std::string, std::vector<double>> grads;
};

Outcome run(Projections& m, const Tensor& x, const Tensor& dy) {
  m.zero_grad();
  Outcome o;
  o.y = values(m.forward(x));
  o.dx = values(m.backward(dy));
  for (const auto& [name, p] : m.named_parameters()) o.grads[name] = values(p->grad_for_accumulate());
  return o;
}

// Each member's own Linear forward and backward, the outputs packed by hand.
Outcome run_members_alone(Projections& m, const Tensor& x, const Tensor& dy) {
  m.zero_grad();
  Outcome o;
  o.y.assign(size_t(N * dy.size(-1)), 0.0);
  o.dx.assign(size_t(N * C), 0.0);
  int64_t column = 0;
  for (const auto& linear : m.members) {
    const int64_t w = linear->options().out_features;
    const std::vector<double> y = values(linear->forward(x));
    const std::vector<double> all = values(dy);
    std::vector<double> part(size_t(N * w));
    for (int64_t n = 0; n < N; ++n)
      for (int64_t j = 0; j < w; ++j) {
        o.y[size_t(n * dy.size(-1) + column + j)] = y[size_t(n * w + j)];
        part[size_t(n * w + j)] = all[size_t(n * dy.size(-1) + column + j)];
      }
    const std::vector<double> dx = values(linear->backward(Tensor::from_floats({N, w}, std::vector<float>(part.begin(), part.end()))));
    for (size_t i = 0; i < dx.size(); ++i) o.dx[i] += dx[i];
    column += w;
  }
  for (const auto& [name, p] : m.named_parameters()) o.grads[name] = values(p->grad_for_accumulate());
  return o;
}

void expect_same(const Outcome& a, const Outcome& b, double tol) {
  EXPECT_TRUE(close_by_norm(a.y, b.y, tol)) << "output";
  EXPECT_TRUE(close_by_norm(a.dx, b.dx, tol)) << "input gradient";
  for (const auto& [name, g] : b.grads) EXPECT_TRUE(close_by_norm(a.grads.at(name), g, tol)) << name;
}

struct Inputs {
  Tensor x, dy;
};

Inputs inputs(uint64_t seed) {
  test::Rng rng(seed);
  return {random_tensor({N, C}, DType::f32, rng), random_tensor({N, 16}, DType::f32, rng)};
}

Projections& initialized(Projections& m, uint64_t seed) {
  Rng rng(seed);
  m.init_parameters(rng);
  for (const auto& p : m.parameters())
    if (p->shape.size() == 1) fill_normal(p->data, 0.0, 0.3, rng);  // biases off zero
  return m;
}

TEST(SiblingLinears, SeparateWeightsRunPerMemberAndEqualEachLinear) {
  Projections m(false);
  initialized(m, 1);
  const Inputs in = inputs(2);
  const Outcome alone = run_members_alone(m, in.x, in.dy);
  const Outcome together = run(m, in.x, in.dy);
  EXPECT_FALSE(m.siblings->last_forward_fused());
  EXPECT_FALSE(m.siblings->last_backward_fused());
  expect_same(together, alone, 1e-6);
}

TEST(SiblingLinears, FlatBufferRunsAsOneProductWithTheSameValues) {
  Projections m(false);
  initialized(m, 1);
  const Inputs in = inputs(2);
  const Outcome alone = run_members_alone(m, in.x, in.dy);
  zero::FlatParameters flat(m, DType::f32, Device::cpu(), 1);
  const Outcome together = run(m, in.x, in.dy);
  EXPECT_TRUE(m.siblings->last_forward_fused());
  EXPECT_TRUE(m.siblings->last_backward_fused());
  expect_same(together, alone, 1e-6);
}

TEST(SiblingLinears, BiasesTakeThePerMemberPathWithTheSameValues) {
  Projections m(true);
  initialized(m, 3);
  const Inputs in = inputs(4);
  const Outcome alone = run_members_alone(m, in.x, in.dy);
  zero::FlatParameters flat(m, DType::f32, Device::cpu(), 1);
  const Outcome together = run(m, in.x, in.dy);
  EXPECT_FALSE(m.siblings->last_forward_fused());
  expect_same(together, alone, 1e-6);
}

TEST(SiblingLinears, EveryMembersHooksAndGradReadyRunOnceOnBothPaths) {
  for (bool flat_buffer : {false, true}) {
    SCOPED_TRACE(flat_buffer ? "flat buffer" : "separate weights");
    Projections m(false);
    initialized(m, 5);
    std::unique_ptr<zero::FlatParameters> flat;
    if (flat_buffer) flat = std::make_unique<zero::FlatParameters>(m, DType::f32, Device::cpu(), 1);
    std::map<const Module*, int> before_forward, after_forward, before_backward, after_backward;
    std::map<const Parameter*, int> ready;
    auto hooks = std::make_shared<ModuleHooks>();
    hooks->before_forward = [&](Module& x) { ++before_forward[&x]; };
    hooks->after_forward = [&](Module& x) {
      ++after_forward[&x];
      EXPECT_EQ(before_forward[&x], 1);
    };
    hooks->before_backward = [&](Module& x) { ++before_backward[&x]; };
    hooks->after_backward = [&](Module& x) { ++after_backward[&x]; };
    hooks->grad_ready = [&](Parameter& p) { ++ready[&p]; };
    for (const auto& linear : m.members) linear->add_hooks(hooks);
    const Inputs in = inputs(6);
    m.forward(in.x);
    m.backward(in.dy);
    EXPECT_EQ(m.siblings->last_forward_fused(), flat_buffer);
    for (const auto& linear : m.members) {
      EXPECT_EQ(before_forward[linear.get()], 1);
      EXPECT_EQ(after_forward[linear.get()], 1);
      EXPECT_EQ(before_backward[linear.get()], 1);
      EXPECT_EQ(after_backward[linear.get()], 1);
      EXPECT_EQ(ready[linear->weight.get()], 1);
      EXPECT_EQ(linear->weight->pending_backward, 0);
    }
  }
}

TEST(SiblingLinears, ConcatenatedRowsOnlyForBackToBackViews) {
  const Tensor flat = Tensor::zeros({30}, DType::f32);
  const Tensor a = flat.view(0, {2, 5}), b = flat.view(10, {3, 5}), c = flat.view(26, {1, 4});
  const Tensor ab = concatenated_rows({a, b});
  ASSERT_TRUE(ab.defined());
  EXPECT_EQ(ab.shape(), (Shape{5, 5}));
  EXPECT_EQ(ab.raw(), a.raw());
  EXPECT_FALSE(concatenated_rows({b, a}).defined());                       // out of order
  EXPECT_FALSE(concatenated_rows({a, flat.view(11, {3, 5})}).defined());  // a gap
  EXPECT_FALSE(concatenated_rows({b, c}).defined());                       // other widths
  EXPECT_FALSE(concatenated_rows({a, Tensor::zeros({3, 5}, DType::f32)}).defined());  // other storage
}

}  // namespace
}  // namespace zt::nn
