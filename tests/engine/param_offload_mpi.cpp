// offload_param {device: cpu} at stage 3: this rank's parameter partition lives in a host store
// and each module's parameters are fetched from it (copied into place, or into a staging buffer
// and all-gathered) before the module runs. On CPU ranks that is the arithmetic of stage 3
// without offload, so losses, gradient norms and parameters are bit-equal with and without it,
// in f32 and bf16, with and without offload_optimizer, at every world size the test runs on;
// the engine says where the parameters live, and the fetch buffers stay within buffer_count.
#include <gtest/gtest.h>

#include <cstring>

#include "../comm/mpi_test_main.hpp"
#include "zt/data/markov_corpus.hpp"
#include "zt/engine/engine.hpp"
#include "zt/models/causal_lm.hpp"

namespace zt::engine {
namespace {

models::TransformerConfig odd_gpt() {
  models::TransformerConfig c;  // sizes that divide by no world size
  c.model_type = "gpt2";
  c.vocab_size = 37;
  c.hidden_size = 12;
  c.num_layers = 2;
  c.num_heads = c.num_kv_heads = 3;
  c.intermediate_size = 20;
  c.max_position_embeddings = 16;
  c.tie_word_embeddings = true;
  c.attention_bias = c.attention_out_bias = c.mlp_bias = true;
  return c;
}

struct Setting {
  bool bf16 = false;
  bool offload_optimizer = false;
  OffloadConfig offload_param;  // device "none": plain stage 3
  int64_t gas = 1;
};

OffloadConfig param_offload(int64_t buffer_count) {
  OffloadConfig o;
  o.device = "cpu";
  o.pin_memory = true;
  o.buffer_count = buffer_count;
  return o;
}

Config stage3_config(const Setting& s, int world) {
  Config c;
  c.train_micro_batch_size_per_gpu = 2;
  c.gradient_accumulation_steps = s.gas;
  c.train_batch_size = 2 * s.gas * world;
  c.optimizer = OptimizerConfig{"AdamW", {{"lr", 3e-3}, {"betas", {0.9, 0.95}}, {"eps", 1e-8}, {"weight_decay", 0.1}}};
  c.bf16 = s.bf16;
  c.gradient_clipping = 0.5;
  c.zero.stage = 3;
  c.zero.reduce_bucket_size = 700;
  c.zero.overlap_comm = true;
  c.zero.stage3_param_persistence_threshold = 40;
  c.zero.stage3_prefetch_bucket_size = 300;
  if (s.offload_optimizer) {
    c.zero.offload_optimizer.device = "cpu";
    c.zero.offload_optimizer.pin_memory = true;
  }
  c.zero.offload_param = s.offload_param;
  return c;
}

struct TrainingRun {
  std::vector<double> losses, norms;
  std::vector<std::pair<std::string, Tensor>> params;
  zero::MemoryReport memory;
  std::string placement;
  bool offloads_parameters = false;
};

TrainingRun train_gpt(const Setting& s, int steps) {
  auto world = comm::world();
  auto model = models::build_causal_lm(odd_gpt());
  model->init_weights(5);
  auto engine = initialize(model, std::make_shared<nn::CrossEntropyLoss>(), stage3_config(s, world->size())).engine;
  data::MarkovCorpus corpus({37, 4, 1.0, 3, 100 + uint64_t(world->rank())});
  TrainingRun run;
  for (int step = 0; step < steps; ++step) {
    double loss = 0;
    for (int64_t i = 0; i < s.gas; ++i) {
      const data::Batch b = corpus.next_batch(2, 16);
      loss += engine->forward(b.inputs, b.targets);
      engine->backward();
    }
    EXPECT_TRUE(engine->step());
    run.losses.push_back(loss);
    run.norms.push_back(engine->last_grad_norm());
  }
  run.params = engine->full_parameters();
  run.memory = engine->memory_report();
  run.placement = engine->placement();
  run.offloads_parameters = engine->offloads_parameters();
  return run;
}

bool bit_equal(const Tensor& a, const Tensor& b) {
  const Tensor x = a.to(Device::cpu()), y = b.to(Device::cpu());  // f32
  return x.nbytes() == y.nbytes() && std::memcmp(x.data<float>(), y.data<float>(), x.nbytes()) == 0;
}

void expect_bit_equal(const TrainingRun& got, const TrainingRun& want) {
  ASSERT_EQ(got.losses.size(), want.losses.size());
  for (size_t i = 0; i < want.losses.size(); ++i) {
    EXPECT_EQ(got.losses[i], want.losses[i]) << "loss, step " << i + 1;
    EXPECT_EQ(got.norms[i], want.norms[i]) << "grad norm, step " << i + 1;
  }
  ASSERT_EQ(got.params.size(), want.params.size());
  for (size_t i = 0; i < want.params.size(); ++i)
    EXPECT_TRUE(bit_equal(got.params[i].second, want.params[i].second)) << want.params[i].first;
}

class ParamOffloadParity : public ::testing::TestWithParam<std::tuple<bool, bool>> {};

TEST_P(ParamOffloadParity, BitEqualToStageThreeWithoutIt) {
  const auto [bf16, offload_optimizer] = GetParam();
  const int world = comm::world()->size();
  for (int64_t gas : {1, 2}) {
    SCOPED_TRACE(testing::Message() << (bf16 ? "bf16" : "f32") << (offload_optimizer ? ", offload_optimizer" : "")
                                    << ", accumulation " << gas);
    Setting plain{bf16, offload_optimizer, OffloadConfig{}, gas};
    Setting offloaded = plain;
    offloaded.offload_param = param_offload(/*buffer_count=*/2);  // staging buffers are reused within a step
    const TrainingRun want = train_gpt(plain, 6);
    const TrainingRun got = train_gpt(offloaded, 6);
    expect_bit_equal(got, want);
    EXPECT_TRUE(got.offloads_parameters);
    EXPECT_FALSE(want.offloads_parameters);
    // The same partition, in the store instead of a device buffer.
    EXPECT_EQ(got.memory.parameters_place, zero::ParamPlace::host);
    EXPECT_EQ(want.memory.parameters_place, zero::ParamPlace::device);
    EXPECT_EQ(got.memory.parameters, want.memory.parameters);
    EXPECT_EQ(got.memory.parameters_in_file, 0u);
    // One rank copies each piece straight into place; more go through buffer_count staging
    // buffers of the largest piece, which is at most a whole parameter.
    if (world == 1) {
      EXPECT_EQ(got.memory.parameter_buffers, 0u);
    } else {
      EXPECT_GT(got.memory.parameter_buffers, 0u);
      EXPECT_LE(got.memory.parameter_buffers, 2 * 37 * 12 * size_t(bf16 ? 2 : 4) + 2 * 64);
    }
    const std::string states = offload_optimizer ? "cpu (host)" : "cpu";
    EXPECT_EQ(got.placement, "parameters: cpu (host), fetched per module, gradients: cpu, master weights and "
                             "optimizer states: " + states);
    EXPECT_EQ(want.placement, "parameters: cpu, gradients: cpu, master weights and optimizer states: " + states);
  }
}

INSTANTIATE_TEST_SUITE_P(Precisions, ParamOffloadParity, ::testing::Combine(::testing::Bool(), ::testing::Bool()),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param) ? "bf16" : "f32") +
                                  (std::get<1>(info.param) ? "_offload_optimizer" : "");
                         });

// One staging buffer: every fetch waits for the gather before it; prefetching still works.
TEST(ParamOffloadBuffers, OneBufferIsEnough) {
  Setting plain;
  Setting offloaded = plain;
  offloaded.offload_param = param_offload(1);
  expect_bit_equal(train_gpt(offloaded, 4), train_gpt(plain, 4));
}

// Buffers smaller than a piece of a parameter are an error naming the key, on every rank alike
// (the check uses the largest piece on any rank); one rank copies straight into place and needs none.
TEST(ParamOffloadBuffers, BufferSizeBelowTheLargestPieceIsAnError) {
  auto world = comm::world();
  Setting s;
  s.offload_param = param_offload(2);
  s.offload_param.buffer_size = 10;
  auto build = [&] {
    auto model = models::build_causal_lm(odd_gpt());
    model->init_weights(5);
    return initialize(model, std::make_shared<nn::CrossEntropyLoss>(), stage3_config(s, world->size())).engine;
  };
  if (world->size() == 1) {
    EXPECT_NO_THROW(build());
    return;
  }
  try {
    build();
    ADD_FAILURE() << "a 10-element buffer_size was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("zero_optimization.offload_param.buffer_size = 10"), std::string::npos) << e.what();
  }
  s.offload_param.buffer_size = 100000000;
  s.offload_param.buffer_count = 0;
  try {
    build();
    ADD_FAILURE() << "buffer_count 0 was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("zero_optimization.offload_param.buffer_count = 0"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace zt::engine

int main(int argc, char** argv) { return zt::comm::testing::run_mpi_tests(argc, argv); }
