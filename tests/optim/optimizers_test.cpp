// Lion, LAMB and SGD against hand-written references of their updates (in double) over several
// steps, LAMB's per-segment trust ratio and its cross-shard norm reducer, the factory's reading
// of DeepSpeed's optimizer params, and the offload form of a step (tiles with the caller's states,
// bf16 gradients, a bf16 copy of the parameters, done() in order) against the plain step.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "error_text.hpp"
#include "zt/core/error.hpp"
#include "zt/engine/config.hpp"
#include "zt/optim/adamw.hpp"
#include "zt/optim/factory.hpp"
#include "zt/optim/lamb.hpp"
#include "zt/optim/lion.hpp"
#include "zt/optim/sgd.hpp"

namespace zt::optim {
namespace {

using nlohmann::json;
using Vec = std::vector<double>;

constexpr int kSteps = 5;
constexpr int64_t kN = 301;

Vec random_values(int64_t n, uint64_t seed, double scale) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> dist(0.0, scale);
  Vec v(static_cast<size_t>(n));
  for (double& x : v) x = float(dist(rng));  // representable in f32, so both sides start equal
  return v;
}

Tensor tensor_of(const Vec& v) { return Tensor::from_floats({int64_t(v.size())}, std::vector<float>(v.begin(), v.end())); }

void expect_close(const Tensor& t, const Vec& ref, double tol, const std::string& what) {
  const std::vector<float> got = t.to_floats();
  ASSERT_EQ(got.size(), ref.size());
  for (size_t i = 0; i < ref.size(); ++i)
    ASSERT_NEAR(got[i], ref[i], tol * std::max(1.0, std::fabs(ref[i]))) << what << " element " << i;
}

using zt::test::error_of;

// ---- Lion ---------------------------------------------------------------------------------------

TEST(Lion, MatchesTheReferenceOverSteps) {
  const LionConfig c{0.9, 0.99, 0.1};
  Lion opt(c);
  Vec p = random_values(kN, 1, 1.0), m(size_t(kN), 0.0);
  const Tensor param = tensor_of(p);
  const double lr = 1e-2, grad_scale = 0.5;
  for (int step = 0; step < kSteps; ++step) {
    const Vec g = random_values(kN, 100 + step, 2.0);
    opt.step({{7, param, tensor_of(g)}}, lr, grad_scale);
    for (size_t i = 0; i < p.size(); ++i) {
      const double gi = g[i] * grad_scale;
      const double cc = c.beta1 * m[i] + (1 - c.beta1) * gi;
      p[i] = p[i] * (1 - lr * c.weight_decay) - lr * ((cc > 0) - (cc < 0));
      m[i] = c.beta2 * m[i] + (1 - c.beta2) * gi;
    }
    expect_close(param, p, 1e-6, "param after step " + std::to_string(step + 1));
    expect_close(opt.state(7).at("exp_avg"), m, 1e-6, "exp_avg");
  }
}

TEST(Lion, ZeroGradientAndMomentumMoveNothing) {
  Lion opt(LionConfig{});
  const Tensor param = tensor_of({1.0, -2.0});
  opt.step({{0, param, tensor_of({0.0, 0.0})}}, 0.1, 1.0);
  expect_close(param, {1.0, -2.0}, 0, "param");
}

// ---- LAMB ---------------------------------------------------------------------------------------

struct LambRef {
  Vec p, m, v;
};

// FusedLamb's arithmetic for one tensor (one segment).
double lamb_reference_step(LambRef& s, const Vec& g, size_t begin, size_t end, const LambConfig& c, double lr,
                           int step) {
  double w_sq = 0, u_sq = 0;
  auto denom = [&](double v) { return c.eps_inside_sqrt ? std::sqrt(v + c.eps) : std::sqrt(v) + c.eps; };
  for (size_t i = begin; i < end; ++i) {
    s.m[i] = c.beta1 * s.m[i] + (1 - c.beta1) * g[i];
    s.v[i] = c.beta2 * s.v[i] + (1 - c.beta2) * g[i] * g[i];
    const double u = s.m[i] / denom(s.v[i]) + c.weight_decay * s.p[i];
    w_sq += s.p[i] * s.p[i];
    u_sq += u * u;
  }
  const double w = std::sqrt(w_sq), u = std::sqrt(u_sq);
  const double ratio = (w != 0 && u != 0) ? std::clamp(w / u, c.min_coeff, c.max_coeff) : 1.0;
  const double step_size = c.bias_correction
                               ? lr * std::sqrt(1 - std::pow(c.beta2, step)) / (1 - std::pow(c.beta1, step))
                               : lr;
  for (size_t i = begin; i < end; ++i)
    s.p[i] -= step_size * ratio * (s.m[i] / denom(s.v[i]) + c.weight_decay * s.p[i]);
  return ratio;
}

void check_lamb(const LambConfig& c, double param_scale) {
  Lamb opt(c);
  // Two tensors of different scales in one buffer, so that their trust ratios differ.
  const size_t split = 120;
  LambRef ref{random_values(kN, 3, 1.0), Vec(size_t(kN), 0.0), Vec(size_t(kN), 0.0)};
  for (size_t i = split; i < ref.p.size(); ++i) ref.p[i] = float(ref.p[i] * param_scale);
  const Tensor param = tensor_of(ref.p);
  const double lr = 1e-2;
  for (int step = 1; step <= kSteps; ++step) {
    const Vec g = random_values(kN, 200 + step, 0.3);
    StepTarget t{0, param, tensor_of(g)};
    t.segments = {{0, int64_t(split)}, {int64_t(split), kN - int64_t(split)}};
    opt.step({t}, lr, 1.0);
    const double r0 = lamb_reference_step(ref, g, 0, split, c, lr, step);
    const double r1 = lamb_reference_step(ref, g, split, size_t(kN), c, lr, step);
    ASSERT_EQ(opt.last_coefficients().size(), 2u);
    EXPECT_NEAR(opt.last_coefficients()[0], r0, 1e-5 * r0);
    EXPECT_NEAR(opt.last_coefficients()[1], r1, 1e-5 * r1);
    expect_close(param, ref.p, 2e-6, "param after step " + std::to_string(step));
  }
}

TEST(Lamb, MatchesTheReferencePerSegment) {
  check_lamb(LambConfig{0.9, 0.999, 1e-6, 0.01, true, false, 10.0, 0.01}, 30.0);
}

TEST(Lamb, WithoutBiasCorrectionEpsInsideAndClampedRatios) {
  // Parameters ~50 against updates ~1 give ratios past max_coeff 5: clamped.
  check_lamb(LambConfig{0.8, 0.99, 1e-4, 0.0, false, true, 5.0, 0.5}, 50.0);
}

TEST(Lamb, AWholeBufferIsOneTensorAndZeroParametersGiveRatioOne) {
  Lamb opt(LambConfig{});
  const Tensor param = Tensor::zeros({4}, DType::f32);
  opt.step({{0, param, tensor_of({1, -1, 2, 0})}}, 0.1, 1.0);
  ASSERT_EQ(opt.last_coefficients().size(), 1u);
  EXPECT_EQ(opt.last_coefficients()[0], 1.0);
}

TEST(Lamb, SplitTensorWithANormReducerMatchesTheWholeTensor) {
  const LambConfig c{};
  const Vec p0 = random_values(kN, 5, 1.0);
  const Tensor whole = tensor_of(p0);
  Lamb whole_opt(c);
  // The same tensor as two "shards" (two targets, as two ranks would hold them), keyed 42.
  const int64_t cut = 100;
  const Tensor a = tensor_of(Vec(p0.begin(), p0.begin() + cut)), b = tensor_of(Vec(p0.begin() + cut, p0.end()));
  Lamb shard_opt(c);
  shard_opt.set_norm_reducer([](std::vector<SegmentNorms>& keyed) {
    ASSERT_EQ(keyed.size(), 2u);
    // Each "rank" contributes its piece; the reducer hands everyone the sum.
    const SegmentNorms sum{42, keyed[0].param_sq + keyed[1].param_sq, keyed[0].update_sq + keyed[1].update_sq};
    keyed = {sum, sum};
  });
  for (int step = 1; step <= 3; ++step) {
    const Vec g = random_values(kN, 300 + step, 0.5);
    whole_opt.step({{0, whole, tensor_of(g)}}, 1e-2, 1.0);
    StepTarget ta{1, a, tensor_of(Vec(g.begin(), g.begin() + cut))}, tb{2, b, tensor_of(Vec(g.begin() + cut, g.end()))};
    ta.segments = {{0, cut, 42}};
    tb.segments = {{0, kN - cut, 42}};
    shard_opt.step({ta, tb}, 1e-2, 1.0);
    std::vector<float> joined = a.to_floats(), rest = b.to_floats();
    joined.insert(joined.end(), rest.begin(), rest.end());
    expect_close(whole, Vec(joined.begin(), joined.end()), 1e-6, "whole vs shards");
  }
}

TEST(Lamb, SegmentsOutsideTheBufferAreAnError) {
  Lamb opt(LambConfig{});
  StepTarget t{0, Tensor::zeros({4}, DType::f32), Tensor::zeros({4}, DType::f32)};
  t.segments = {{2, 3}};
  EXPECT_NE(error_of([&] { opt.step({t}, 0.1, 1.0); }).find("segment [2, 5) lies outside its 4 elements"),
            std::string::npos);
}

// ---- SGD ----------------------------------------------------------------------------------------

void check_sgd(const SgdConfig& c) {
  Sgd opt(c);
  Vec p = random_values(kN, 9, 1.0), buf(size_t(kN), 0.0);
  const Tensor param = tensor_of(p);
  const double lr = 0.05, grad_scale = 2.0;
  for (int step = 1; step <= kSteps; ++step) {
    const Vec g = random_values(kN, 400 + step, 1.0);
    opt.step({{3, param, tensor_of(g)}}, lr, grad_scale);
    for (size_t i = 0; i < p.size(); ++i) {
      double d = g[i] * grad_scale + c.weight_decay * p[i];
      if (c.momentum != 0) {
        buf[i] = step == 1 ? d : c.momentum * buf[i] + (1 - c.dampening) * d;
        d = c.nesterov ? d + c.momentum * buf[i] : buf[i];
      }
      p[i] -= lr * d;
    }
    expect_close(param, p, 1e-6, "param after step " + std::to_string(step));
  }
  EXPECT_EQ(opt.state_bytes(), c.momentum != 0 ? size_t(kN) * 4 : 0u);
}

TEST(Sgd, PlainWithWeightDecay) { check_sgd({0.0, 0.0, 0.01, false}); }
TEST(Sgd, MomentumWithDampening) { check_sgd({0.9, 0.3, 0.0, false}); }
TEST(Sgd, Nesterov) { check_sgd({0.9, 0.0, 1e-3, true}); }
TEST(Sgd, NesterovNeedsMomentumAndNoDampening) {
  EXPECT_NE(error_of([] { Sgd(SgdConfig{0.9, 0.1, 0.0, true}); }).find("nesterov"), std::string::npos);
}

// ---- factory ------------------------------------------------------------------------------------

TEST(Factory, AdamIsAdamWUnlessToldAndDefaultsAreFusedAdams) {
  OptimizerBuild adam = make_optimizer("adam", {{"lr", 3e-4}, {"betas", {0.8, 0.95}}});
  EXPECT_EQ(adam.optimizer->name(), "AdamW");
  EXPECT_DOUBLE_EQ(adam.lr, 3e-4);
  const auto& c = dynamic_cast<AdamW&>(*adam.optimizer).config();
  EXPECT_TRUE(c.adam_w_mode);
  EXPECT_EQ(c.beta1, 0.8);
  EXPECT_EQ(c.beta2, 0.95);
  EXPECT_EQ(c.eps, 1e-8);
  EXPECT_EQ(c.weight_decay, 0.0);

  OptimizerBuild l2 = make_optimizer("Adam", {{"adam_w_mode", false}, {"weight_decay", 0.1}});
  EXPECT_EQ(l2.optimizer->name(), "Adam");
  EXPECT_DOUBLE_EQ(l2.lr, 1e-3);
  OptimizerBuild torch = make_optimizer("AdamW", {{"torch_adam", true}});
  EXPECT_EQ(dynamic_cast<AdamW&>(*torch.optimizer).config().weight_decay, 0.01);  // torch.optim.AdamW's
  EXPECT_NE(error_of([] { make_optimizer("AdamW", {{"adam_w_mode", false}}); }).find("use type Adam"),
            std::string::npos);
}

TEST(Factory, EveryTypeByName) {
  EXPECT_EQ(make_optimizer("Lion", {{"lr", 1e-4}}).optimizer->name(), "Lion");
  EXPECT_EQ(dynamic_cast<Lion&>(*make_optimizer("lion", json::object()).optimizer).config().beta2, 0.999);
  OptimizerBuild lamb = make_optimizer("Lamb", {{"lr", 2e-3}, {"max_coeff", 0.3}, {"min_coeff", 0.01}});
  EXPECT_EQ(lamb.optimizer->name(), "LAMB");
  EXPECT_EQ(dynamic_cast<Lamb&>(*lamb.optimizer).config().max_coeff, 0.3);
  OptimizerBuild sgd = make_optimizer("SGD", {{"lr", 0.1}, {"momentum", 0.9}, {"nesterov", true}});
  EXPECT_EQ(sgd.optimizer->name(), "SGD");
  EXPECT_TRUE(dynamic_cast<Sgd&>(*sgd.optimizer).config().nesterov);
  engine::OptimizerConfig oc{"AdamW", {{"lr", 0.5}}};
  EXPECT_DOUBLE_EQ(make_optimizer(oc).lr, 0.5);
  EXPECT_FALSE(sgd.optimizer->set_betas(0.9, 0.99));
  EXPECT_TRUE(lamb.optimizer->set_betas(0.85, 0.99));
  EXPECT_EQ(dynamic_cast<Lamb&>(*lamb.optimizer).config().beta1, 0.85);
}

TEST(Factory, ErrorsNameTheKeyAndTheFix) {
  EXPECT_NE(error_of([] { make_optimizer("AdamW", {{"weight_decy", 0.1}}, "ds.json"); })
                .find("ds.json: unknown key 'optimizer.params.weight_decy' (did you mean 'weight_decay'?)"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_optimizer("AdamW", {{"betas", {0.9}}}); })
                .find("optimizer.params.betas = [0.9]: expected two numbers"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_optimizer("AdamW", {{"lr", "auto"}}); }).find("optimizer.params.lr = \"auto\""),
            std::string::npos);
  EXPECT_NE(error_of([] { make_optimizer("AdamW", {{"max_grad_norm", 1.0}}); }).find("gradient_clipping"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_optimizer("Lamb", {{"max_grad_norm", 1.0}}); }).find("does not support"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_optimizer("AdamW", {{"amsgrad", true}}); }).find("does not support"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_optimizer("OneBitAdam", json::object()); })
                .find("a DeepSpeed optimizer that this version of zt does not support; supported: Adam, AdamW, Lion, "
                      "LAMB, SGD"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_optimizer("AdamX", json::object()); }).find("did you mean"), std::string::npos);
  EXPECT_NE(error_of([] { make_optimizer("SGD", {{"momentum", -0.5}}); })
                .find("optimizer.params.momentum = -0.5: expected a number >= 0"),
            std::string::npos);
}

TEST(Optimizers, HostBuffersOnly) {
  Lion opt(LionConfig{});
  const Tensor p = Tensor::zeros({3}, DType::f64);
  EXPECT_NE(error_of([&] { opt.step({{0, p, p}}, 0.1, 1.0); }).find("must be f32"), std::string::npos);
}

// ---- the offload form of a step -----------------------------------------------------------------

std::unique_ptr<Optimizer> each_optimizer(int which) {
  switch (which) {
    case 0: return std::make_unique<AdamW>(AdamWConfig{0.9, 0.95, 1e-8, 0.1, true});
    case 1: return std::make_unique<AdamW>(AdamWConfig{0.9, 0.95, 1e-8, 0.1, false});  // Adam with L2
    case 2: return std::make_unique<Lion>(LionConfig{0.9, 0.99, 0.1});
    case 3: return std::make_unique<Sgd>(SgdConfig{0.9, 0.3, 0.01, false});
    case 4: return std::make_unique<Sgd>(SgdConfig{0.0, 0.0, 0.01, false});
    default: return std::make_unique<Lamb>(LambConfig{});
  }
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

// One buffer stepped whole (f32 gradients holding bf16 values, the optimizer's own states) and the
// same buffer as three tiles with bf16 gradients, states the caller owns (created through create()
// at the first step, passed back as views afterwards, as the engine's offload does) and a bf16 copy
// of the parameters: the elementwise optimizers agree bit for bit; LAMB, whose pieces of one
// tensor sum their norms through the reducer, to rounding.
TEST(Optimizers, OffloadFormEqualsThePlainStep) {
  for (int which = 0; which < 6; ++which) {
    auto plain = each_optimizer(which), tiled = each_optimizer(which);
    SCOPED_TRACE(plain->name() + " #" + std::to_string(which));
    const bool lamb = plain->name() == "LAMB";
    const Vec p0 = random_values(kN, 21, 1.0);
    const Tensor whole = tensor_of(p0), split = tensor_of(p0);
    const Tensor copy = Tensor::zeros({kN}, DType::bf16);
    std::map<std::string, Tensor> owned;  // the caller's states, whole-buffer tensors
    const std::vector<std::pair<int64_t, int64_t>> tiles = {{0, 100}, {100, 101}, {201, 100}};
    const Segment whole_segment{0, kN, 7};
    if (lamb)
      dynamic_cast<Lamb&>(*tiled).set_norm_reducer([](std::vector<SegmentNorms>& keyed) {
        SegmentNorms sum{7, 0, 0};
        for (const auto& k : keyed) sum.param_sq += k.param_sq, sum.update_sq += k.update_sq;
        for (auto& k : keyed) k = sum;
      });
    for (int step = 1; step <= 4; ++step) {
      const Vec g = random_values(kN, 500 + step, 0.3);
      const Tensor g16 = tensor_of(g).to(DType::bf16), g32 = g16.to(DType::f32);
      plain->step({{0, whole, g32, {whole_segment}}}, 1e-2, 0.5);
      std::vector<ExternalStates> states(tiles.size());
      std::vector<StepTarget> targets;
      std::vector<int> done;
      for (size_t i = 0; i < tiles.size(); ++i) {
        const auto [at, n] = tiles[i];
        for (const auto& [name, t] : owned) states[i].tensors[name] = t.view(size_t(at), {n});
        states[i].create = [&owned, at = at, n = n](const std::string& name) {
          Tensor& t = owned[name];
          if (!t.defined()) t = Tensor::zeros({kN}, DType::f32);
          return t.view(size_t(at), {n});
        };
        StepTarget t{int64_t(i), split.view(size_t(at), {n}), g16.view(size_t(at), {n}), {{0, n, 7}}};
        t.param_out = copy.view(size_t(at), {n});
        t.states = &states[i];
        t.done = [&done, i] { done.push_back(int(i)); };
        targets.push_back(t);
      }
      tiled->step(targets, 1e-2, 0.5);
      ASSERT_EQ(done, (std::vector<int>{0, 1, 2})) << "done() once per target, in order";
      if (lamb) {
        const std::vector<float> w = whole.to_floats();
        expect_close(split, Vec(w.begin(), w.end()), 1e-6, "LAMB tiles");
      } else {
        ASSERT_TRUE(same_bits(split, whole)) << "step " << step;
        for (const auto& name : plain->state_names()) ASSERT_TRUE(same_bits(owned.at(name), plain->state(0).at(name))) << name;
      }
      ASSERT_TRUE(same_bits(copy, split.to(DType::bf16))) << "the bf16 copy is the parameters rounded";
      EXPECT_EQ(tiled->state_bytes(), 0u) << "the caller owns offloaded states";
      std::vector<std::string> names;
      for (const auto& [name, t] : owned) names.push_back(name);
      auto expected = plain->state_names();
      std::sort(expected.begin(), expected.end());
      EXPECT_EQ(names, expected);
    }
  }
}

TEST(Optimizers, OnlyLambReadsEveryTargetFirst) {
  for (int which = 0; which < 6; ++which) {
    auto opt = each_optimizer(which);
    EXPECT_EQ(opt->streams_targets(), opt->name() != "LAMB") << opt->name();
  }
}

}  // namespace
}  // namespace zt::optim
