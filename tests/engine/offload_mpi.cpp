// offload_optimizer {device: cpu}: on CPU ranks the offloaded step is the same arithmetic as the
// step without offload, so every stage (1-3), in f32 and bf16, gives bit-equal losses, gradient
// norms and parameters with and without it; the master weights and optimizer states are counted
// as the rank's host memory, and the engine says where each model state lives.
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

struct TrainingRun {
  std::vector<double> losses, norms;
  std::vector<std::pair<std::string, Tensor>> params;
  zero::MemoryReport memory;
  std::string placement;
};

TrainingRun train_gpt(int stage, bool bf16, bool offload, int steps, int64_t gas) {
  auto world = comm::world();
  auto model = models::build_causal_lm(odd_gpt());
  model->init_weights(5);
  Config c;
  c.train_micro_batch_size_per_gpu = 2;
  c.gradient_accumulation_steps = gas;
  c.train_batch_size = 2 * gas * world->size();
  c.optimizer = OptimizerConfig{"AdamW", {{"lr", 3e-3}, {"betas", {0.9, 0.95}}, {"eps", 1e-8}, {"weight_decay", 0.1}}};
  c.bf16 = bf16;
  c.gradient_clipping = 0.5;
  c.zero.stage = stage;
  c.zero.reduce_bucket_size = 700;
  c.zero.overlap_comm = stage >= 2;
  c.zero.stage3_param_persistence_threshold = 40;
  c.zero.stage3_prefetch_bucket_size = 300;
  if (offload) {
    c.zero.offload_optimizer.device = "cpu";
    c.zero.offload_optimizer.pin_memory = true;
  }
  auto engine = initialize(model, std::make_shared<nn::CrossEntropyLoss>(), c).engine;
  EXPECT_EQ(engine->offloads_optimizer(), offload);
  data::MarkovCorpus corpus({37, 4, 1.0, 3, 100 + uint64_t(world->rank())});
  TrainingRun run;
  for (int s = 0; s < steps; ++s) {
    double loss = 0;
    for (int64_t i = 0; i < gas; ++i) {
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
  return run;
}

bool bit_equal(const Tensor& a, const Tensor& b) {
  const Tensor x = a.to(Device::cpu()), y = b.to(Device::cpu());  // f32
  return x.nbytes() == y.nbytes() && std::memcmp(x.data<float>(), y.data<float>(), x.nbytes()) == 0;
}

class OffloadParity : public ::testing::TestWithParam<std::tuple<int, bool>> {};

TEST_P(OffloadParity, BitEqualToTheSameStageWithoutOffload) {
  const auto [stage, bf16] = GetParam();
  for (int64_t gas : {1, 2}) {
    SCOPED_TRACE(testing::Message() << "stage " << stage << (bf16 ? " bf16" : " f32") << ", accumulation " << gas);
    const TrainingRun plain = train_gpt(stage, bf16, false, 6, gas);
    const TrainingRun offloaded = train_gpt(stage, bf16, true, 6, gas);
    for (size_t i = 0; i < plain.losses.size(); ++i) {
      EXPECT_EQ(offloaded.losses[i], plain.losses[i]) << "loss, step " << i + 1;
      EXPECT_EQ(offloaded.norms[i], plain.norms[i]) << "grad norm, step " << i + 1;
    }
    ASSERT_EQ(offloaded.params.size(), plain.params.size());
    for (size_t i = 0; i < plain.params.size(); ++i)
      EXPECT_TRUE(bit_equal(offloaded.params[i].second, plain.params[i].second)) << plain.params[i].first;
    // The master copy is a separate host buffer even in f32, where it otherwise aliases the parameters.
    EXPECT_GT(offloaded.memory.master_weights, 0u);
    EXPECT_EQ(offloaded.memory.optimizer_states, plain.memory.optimizer_states);
    EXPECT_EQ(offloaded.placement, "parameters: cpu, gradients: cpu, master weights and optimizer states: cpu (host), "
                                   "activations: kept for backward");
    EXPECT_EQ(plain.placement, "parameters: cpu, gradients: cpu, master weights and optimizer states: cpu, "
                               "activations: kept for backward");
  }
}

INSTANTIATE_TEST_SUITE_P(Stages, OffloadParity,
                         ::testing::Combine(::testing::Values(1, 2, 3), ::testing::Values(false, true)),
                         [](const auto& info) {
                           return "stage" + std::to_string(std::get<0>(info.param)) +
                                  (std::get<1>(info.param) ? "_bf16" : "_f32");
                         });

}  // namespace
}  // namespace zt::engine

int main(int argc, char** argv) { return zt::comm::testing::run_mpi_tests(argc, argv); }
