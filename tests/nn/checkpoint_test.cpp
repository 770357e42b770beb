// nn::Checkpoint and Module::release_saved: every layer that keeps tensors for its backward lets
// them go (measured by Storage's byte counter), a Checkpoint keeps only its body's input, its
// backward recomputes the body and gives bit-equal gradients, parameter uses are counted once
// (a tied weight is ready after its last backward), and the wrapper adds no name level.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>

#include "bit_equal.hpp"
#include "zt/core/random.hpp"
#include "zt/core/storage.hpp"
#include "zt/nn/attention.hpp"
#include "zt/nn/checkpoint.hpp"
#include "zt/nn/containers.hpp"
#include "zt/nn/mlp.hpp"

namespace zt::nn {
namespace {

using test::bit_equal;

constexpr int64_t B = 2, T = 8, C = 16;

// Host bytes a tensor's storage takes (Storage::allocate rounds to 64).
size_t storage_bytes(const Tensor& t) { return (t.storage()->nbytes() + 63) / 64 * 64; }


std::shared_ptr<Linear> linear(int64_t in, int64_t out, ops::Activation act = ops::Activation::none, bool bias = true) {
  return std::make_shared<Linear>(LinearOptions{in, out, bias, ops::WeightLayout::out_in, act, 0.2});
}

AttentionOptions attention_options(bool fused) {
  AttentionOptions o;
  o.n_embd = C;
  o.n_head = 4;
  o.n_kv_head = fused ? 4 : 2;
  o.fused_qkv = fused;
  o.rope_theta = fused ? 0.0 : 10000.0;
  o.out_name = fused ? "c_proj" : "o_proj";
  return o;
}

// A pre-norm transformer block from containers: x + attn(norm(x)), then h + mlp(norm(h)).
std::shared_ptr<Module> block(bool llama) {
  auto norm = [&]() -> std::shared_ptr<Module> {
    if (llama) return std::make_shared<RMSNorm>(C);
    return std::make_shared<LayerNorm>(C);
  };
  const MLPOptions mlp = llama ? MLPOptions{C, 40, MLPKind::swiglu, false} : MLPOptions{C, 4 * C, MLPKind::gelu};
  auto attn = std::make_shared<Sequential>();
  attn->add(norm(), "norm").add(std::make_shared<Attention>(attention_options(!llama)), "attn");
  auto ffn = std::make_shared<Sequential>();
  ffn->add(norm(), "norm").add(std::make_shared<MLP>(mlp), "mlp");
  auto b = std::make_shared<Sequential>();
  b->add(std::make_shared<Residual>(attn)).add(std::make_shared<Residual>(ffn));
  return b;
}

std::shared_ptr<Module> gpt2_block() { return block(false); }
std::shared_ptr<Module> llama_block() { return block(true); }

struct LayerCase {
  std::string name;
  std::function<std::shared_ptr<Module>()> make;
  std::function<Tensor(Rng&)> input;
};

void PrintTo(const LayerCase& c, std::ostream* os) { *os << c.name; }

Tensor activations(Rng& rng) {
  Tensor x = Tensor::empty({B, T, C}, DType::f32);
  fill_uniform(x, -1.0, 1.0, rng);
  return x;
}

Tensor token_ids(Rng& rng) {
  std::vector<int32_t> ids(size_t(B * T));
  for (auto& id : ids) id = int32_t(rng.next_u64() % 50);
  return Tensor::from_ints({B, T}, ids);
}

std::vector<LayerCase> layer_cases() {
  return {
      {"Linear", [] { return linear(C, 24); }, activations},
      {"LinearGelu", [] { return linear(C, 24, ops::Activation::gelu_tanh); }, activations},
      {"LinearNoBias", [] { return linear(C, 24, ops::Activation::none, false); }, activations},
      {"Embedding", [] { return std::make_shared<Embedding>(50, C); },
       token_ids},
      {"LayerNorm", [] { return std::make_shared<LayerNorm>(C); }, activations},
      {"RMSNorm", [] { return std::make_shared<RMSNorm>(C); }, activations},
      {"AttentionFused", [] { return std::make_shared<Attention>(attention_options(true)); }, activations},
      {"AttentionGqaRope", [] { return std::make_shared<Attention>(attention_options(false)); }, activations},
      {"MlpGelu", [] { return std::make_shared<MLP>(MLPOptions{C, 4 * C, MLPKind::gelu}); }, activations},
      {"MlpSwiglu", [] { return std::make_shared<MLP>(MLPOptions{C, 40, MLPKind::swiglu, false}); }, activations},
      {"Gpt2StyleBlock", [] { return gpt2_block(); }, activations},
      {"LlamaStyleBlock", [] { return llama_block(); }, activations},
      {"Sequential", [] { return std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
                              linear(C, 24, ops::Activation::gelu_tanh), linear(24, C)}); },
       activations},
      {"Residual", [] { return std::make_shared<Residual>(linear(C, C, ops::Activation::gelu_tanh)); }, activations},
      {"Checkpoint", [] { return std::make_shared<Checkpoint>(gpt2_block()); }, activations},
  };
}

class ReleaseSaved : public ::testing::TestWithParam<LayerCase> {};

// The bytes a module holds between its forward and its backward, beyond its output, go to zero.
TEST_P(ReleaseSaved, DropsWhatTheForwardKeptForTheBackward) {
  const LayerCase& c = GetParam();
  auto m = c.make();
  Rng rng(7);
  m->init_parameters(rng);
  Tensor y;
  const size_t before = host_bytes_allocated();
  {
    const Tensor x = c.input(rng);  // only the module's references keep the input alive
    y = m->forward(x);
  }
  const size_t held = host_bytes_allocated() - before;
  m->release_saved();
  const size_t released = host_bytes_allocated() - before;
  EXPECT_GT(held, storage_bytes(y)) << c.name << " keeps nothing for its backward?";
  EXPECT_EQ(released, storage_bytes(y)) << c.name << ": held " << held << " bytes after forward";
  // What was dropped cannot be used: the backward needs the forward again.
  EXPECT_THROW(m->backward(Tensor::zeros(y.shape(), y.dtype())), Error);
}

INSTANTIATE_TEST_SUITE_P(Layers, ReleaseSaved, ::testing::ValuesIn(layer_cases()),
                         [](const auto& info) { return info.param.name; });

// One forward and backward of a model and its gradients, for comparing two runs.
struct Pass {
  Tensor y, dx;
  std::vector<std::pair<std::string, Tensor>> grads;
  std::vector<std::string> ready;  // grad_ready in order, by parameter name
};

Pass run_pass(Module& model, const Tensor& x, const Tensor& dy) {
  const auto named = model.named_parameters();
  auto hooks = std::make_shared<ModuleHooks>();
  Pass pass;
  hooks->grad_ready = [&](Parameter& p) {
    for (const auto& [name, q] : named)
      if (q.get() == &p) pass.ready.push_back(name);
  };
  model.add_hooks_recursive(hooks);
  model.zero_grad();
  pass.y = model.forward(x).clone();
  pass.dx = model.backward(dy);
  model.clear_hooks_recursive();
  for (const auto& [name, p] : named) {
    EXPECT_EQ(p->pending_backward, 0) << name;
    pass.grads.emplace_back(name, p->grad.clone());
  }
  return pass;
}

void expect_same_pass(const Pass& a, const Pass& b) {
  EXPECT_TRUE(bit_equal(a.y, b.y));
  EXPECT_TRUE(bit_equal(a.dx, b.dx));
  ASSERT_EQ(a.grads.size(), b.grads.size());
  for (size_t i = 0; i < a.grads.size(); ++i) {
    EXPECT_EQ(a.grads[i].first, b.grads[i].first);
    EXPECT_TRUE(bit_equal(a.grads[i].second, b.grads[i].second)) << a.grads[i].first;
  }
  EXPECT_EQ(a.ready, b.ready);
}

// A user's stack with its middle blocks (and, nested, one inside another) in Checkpoints.
std::shared_ptr<Sequential> user_stack(bool checkpointed, std::vector<std::shared_ptr<Module>>& blocks) {
  blocks = {gpt2_block(), llama_block(), std::make_shared<Residual>(linear(C, C, ops::Activation::gelu_tanh))};
  auto wrap = [&](std::shared_ptr<Module> m) -> std::shared_ptr<Module> {
    return checkpointed ? std::make_shared<Checkpoint>(std::move(m)) : m;
  };
  auto inner = std::make_shared<Sequential>();
  inner->add(blocks[1]).add(wrap(blocks[2]));
  auto model = std::make_shared<Sequential>();
  model->add(linear(C, C)).add(wrap(blocks[0])).add(wrap(inner)).add(std::make_shared<LayerNorm>(C));
  return model;
}

TEST(Checkpoint, RecomputedBackwardIsBitEqualAndKeepsNames) {
  std::vector<std::shared_ptr<Module>> blocks;
  auto plain = user_stack(false, blocks);
  auto checkpointed = user_stack(true, blocks);
  Rng init(3);
  plain->init_parameters(init);
  const auto plain_names = plain->named_parameters();
  const auto names = checkpointed->named_parameters();
  ASSERT_EQ(names.size(), plain_names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ(names[i].first, plain_names[i].first);
    names[i].second->data.copy_from(plain_names[i].second->data);
  }
  EXPECT_EQ(names[2].first, "1.0.fn.norm.weight") << "the Checkpoint adds no name level";
  Rng rng(11);
  const Tensor x = activations(rng), dy = activations(rng);
  for (int repeat = 0; repeat < 2; ++repeat) expect_same_pass(run_pass(*plain, x, dy), run_pass(*checkpointed, x, dy));
}

// Inside a Checkpoint a module's forward runs twice, but its parameters count one use: a weight
// tied between a checkpointed layer and one outside is ready once, after its last backward.
TEST(Checkpoint, TiedWeightAcrossTheBoundaryIsReadyOnce) {
  auto first = linear(C, C, ops::Activation::none, false);
  auto second = std::make_shared<Linear>(LinearOptions{C, C, false}, first->weight);
  Sequential model({std::make_shared<Checkpoint>(first), second});
  Rng rng(5);
  model.init_parameters(rng);
  auto hooks = std::make_shared<ModuleHooks>();
  std::vector<std::string> events;
  hooks->before_forward = [&](Module& m) {
    events.push_back((Module::recomputing() ? "recompute " : "forward ") + m.type_name());
  };
  hooks->after_backward = [&](Module& m) { events.push_back("backward " + m.type_name()); };
  hooks->grad_ready = [&](Parameter& p) { events.push_back(str("ready, pending ", p.pending_backward)); };
  model.add_hooks_recursive(hooks);
  model.forward(activations(rng));
  EXPECT_EQ(first->weight->pending_backward, 2);
  model.backward(activations(rng));
  EXPECT_EQ(first->weight->pending_backward, 0);
  const std::vector<std::string> expected = {
      "forward Sequential", "forward Checkpoint", "forward Linear", "forward Linear",  // second
      "backward Linear",                                                               // second
      "recompute Linear",   "ready, pending 0",  "backward Linear",  "backward Checkpoint", "backward Sequential"};
  EXPECT_EQ(events, expected);
}

TEST(Checkpoint, HoldsOnlyItsInputBetweenForwardAndBackward) {
  Rng rng(9);
  auto body = gpt2_block();
  body->init_parameters(rng);
  Checkpoint checkpoint(body);
  const size_t before = host_bytes_allocated();
  Tensor y;
  {
    const Tensor x = activations(rng);
    y = checkpoint.forward(x);
  }
  EXPECT_EQ(host_bytes_allocated() - before, storage_bytes(y) + size_t(B * T * C) * 4);
  EXPECT_EQ(checkpoint.saved_bytes(), size_t(B * T * C) * 4);
  EXPECT_TRUE(checkpoint.saved_on_host());
  checkpoint.backward(activations(rng));
  EXPECT_EQ(checkpoint.saved_bytes(), 0u);
  y = Tensor();
  body->zero_grad();
  // The gradients persist; nothing else is left over from the pair.
  size_t grads = 0;
  for (const auto& p : body->parameters()) grads += storage_bytes(p->grad);
  EXPECT_EQ(host_bytes_allocated() - before, grads);
}

TEST(Checkpoint, ErrorsNameTheBody) {
  EXPECT_THROW(Checkpoint(nullptr), Error);
  Checkpoint checkpoint(linear(C, C));
  try {
    checkpoint.backward(Tensor::zeros({B, T, C}, DType::f32));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("Checkpoint around Linear: backward without a forward"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace zt::nn
