// CausalLM::checkpoint_blocks on GPT-2 and Llama: the parameter names stay Hugging Face's (and a
// saved model loads into a checkpointed one), a forward and backward gives bit-equal logits and
// gradients, and the host bytes held between the forward and the backward (measured) drop with
// each checkpointed block, to the logits alone after release_saved.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "bit_equal.hpp"
#include "zt/core/random.hpp"
#include "zt/core/storage.hpp"
#include "zt/models/builtin.hpp"
#include "zt/models/causal_lm.hpp"
#include "zt/nn/loss.hpp"

namespace zt::models {
namespace {

using test::bit_equal;

constexpr int64_t B = 2, T = 32;


std::shared_ptr<CausalLM> tiny(const std::string& name) {
  auto model = build_causal_lm(builtin_config(name));
  model->init_weights(17);
  return model;
}

Tensor ids_for(const CausalLM& model, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> ids(size_t(B * T));
  for (auto& id : ids) id = int32_t(rng.below(uint64_t(model.config().vocab_size)));
  return Tensor::from_ints({B, T}, ids);
}

class CheckpointedBlocks : public ::testing::TestWithParam<std::string> {};

TEST_P(CheckpointedBlocks, KeepHuggingFaceNames) {
  auto model = tiny(GetParam());
  const auto plain = model->named_parameters();
  for (int64_t count : {int64_t(1), int64_t(2), int64_t(50), int64_t(0)}) {
    model->checkpoint_blocks(count, {true});
    EXPECT_EQ(model->checkpointed_blocks(), std::min<int64_t>(count, 2));
    const auto named = model->named_parameters();
    ASSERT_EQ(named.size(), plain.size());
    for (size_t i = 0; i < named.size(); ++i) {
      EXPECT_EQ(named[i].first, plain[i].first);
      EXPECT_EQ(named[i].second, plain[i].second);
    }
  }
  EXPECT_THROW(model->checkpoint_blocks(-1), Error);
}

TEST_P(CheckpointedBlocks, LoadSavedWeightsUnderTheSameNames) {
  const auto dir = std::filesystem::temp_directory_path() / ("zt_ckpt_names_" + std::to_string(::getpid()));
  auto source = tiny(GetParam());
  save_pretrained(*source, dir.string());
  auto model = build_causal_lm(source->config());
  model->checkpoint_blocks(2);
  load_weights(*model, dir.string());
  std::filesystem::remove_all(dir);
  const auto want = source->named_parameters(), got = model->named_parameters();
  for (size_t i = 0; i < want.size(); ++i) EXPECT_TRUE(bit_equal(got[i].second->data, want[i].second->data)) << want[i].first;
}

struct Pass {
  Tensor logits;
  std::vector<Tensor> grads;
  size_t held = 0;  // host bytes allocated by the forward and the loss, still held before the backward
};

Pass forward_backward(CausalLM& model, const Tensor& ids) {
  model.zero_grad();
  Pass pass;
  nn::CrossEntropyLoss loss;
  const Tensor targets = shift_labels(ids);
  const size_t before = host_bytes_allocated();
  pass.logits = model.forward(ids);
  loss.forward(pass.logits, targets);
  pass.held = host_bytes_allocated() - before;
  pass.logits = pass.logits.clone();
  model.backward(loss.backward());
  for (const auto& p : model.parameters()) pass.grads.push_back(p->grad.clone());
  return pass;
}

TEST_P(CheckpointedBlocks, BitEqualGradientsAndFewerBytesHeld) {
  auto model = tiny(GetParam());
  const Tensor ids = ids_for(*model, 4);
  forward_backward(*model, ids);  // gradients allocated, so that every pass below allocates the same
  std::vector<Pass> passes;
  for (int64_t count : {0, 1, 2}) {
    model->checkpoint_blocks(count);
    passes.push_back(forward_backward(*model, ids));
  }
  for (size_t k = 1; k < passes.size(); ++k) {
    SCOPED_TRACE(testing::Message() << k << " checkpointed blocks");
    EXPECT_TRUE(bit_equal(passes[k].logits, passes[0].logits));
    for (size_t i = 0; i < passes[0].grads.size(); ++i) EXPECT_TRUE(bit_equal(passes[k].grads[i], passes[0].grads[i])) << i;
    EXPECT_LT(passes[k].held, passes[k - 1].held);
  }
  // Both blocks have the same shapes: each checkpointed block lets the same bytes go.
  EXPECT_EQ(passes[0].held - passes[1].held, passes[1].held - passes[2].held);
  std::printf("%s: %zu bytes held between forward and backward, %zu with 1 block checkpointed, %zu with 2\n",
              GetParam().c_str(), passes[0].held, passes[1].held, passes[2].held);
}

// release_saved on the whole model (embeddings, decoder blocks, final norm, head) leaves only the logits.
TEST_P(CheckpointedBlocks, ReleaseSavedLeavesOnlyTheLogits) {
  auto model = tiny(GetParam());
  const Tensor ids = ids_for(*model, 5);
  const size_t before = host_bytes_allocated();
  Tensor logits = model->forward(ids);
  const size_t held = host_bytes_allocated() - before;
  model->release_saved();
  const size_t logits_bytes = (logits.storage()->nbytes() + 63) / 64 * 64;
  EXPECT_GT(held, logits_bytes);
  EXPECT_EQ(host_bytes_allocated() - before, logits_bytes);
  EXPECT_THROW(model->backward(Tensor::zeros(logits.shape(), logits.dtype())), Error);
}

INSTANTIATE_TEST_SUITE_P(Tiny, CheckpointedBlocks, ::testing::Values("gpt2-tiny", "llama-tiny"),
                         [](const auto& info) { return info.param == "gpt2-tiny" ? "gpt2" : "llama"; });

}  // namespace
}  // namespace zt::models
