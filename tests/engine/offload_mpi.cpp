// offload_optimizer {device: cpu}: on CPU ranks the offloaded step is the same arithmetic as the
// step without offload, so every stage (1-3), in f32, bf16 and fp16, gives bit-equal losses,
// gradient norms and parameters with and without it, with the partition in one tile or in many
// small ones (ZT_OFFLOAD_TILE_BYTES) cycling through two staging buffers, and for every optimizer;
// the master weights and optimizer states are counted as the rank's host memory, the engine says
// where each model state lives, and checkpoints load across offload settings.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>

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

enum class Precision { f32, bf16, fp16 };

const char* precision_name(Precision p) { return p == Precision::f32 ? "f32" : (p == Precision::bf16 ? "bf16" : "fp16"); }

struct RunOptions {
  int stage = 1;
  Precision precision = Precision::f32;
  bool offload = false;
  int64_t gas = 1;
  int64_t tile_bytes = 0;  // 0: the default (64 MiB: one tile here)
  int64_t buffer_count = 4;
  OptimizerConfig optimizer{"AdamW", {{"lr", 3e-3}, {"betas", {0.9, 0.95}}, {"eps", 1e-8}, {"weight_decay", 0.1}}};
};

struct TrainingRun {
  std::vector<double> losses, norms;
  std::vector<std::pair<std::string, Tensor>> params;
  zero::MemoryReport memory;
  std::string placement;
  int64_t skipped = 0;
};

// ZT_OFFLOAD_TILE_BYTES for the engines built while it lives.
class TileBytes {
 public:
  explicit TileBytes(int64_t bytes) {
    if (bytes > 0) setenv("ZT_OFFLOAD_TILE_BYTES", std::to_string(bytes).c_str(), 1);
  }
  ~TileBytes() { unsetenv("ZT_OFFLOAD_TILE_BYTES"); }
};

Config make_config(const RunOptions& o, int world_size) {
  Config c;
  c.train_micro_batch_size_per_gpu = 2;
  c.gradient_accumulation_steps = o.gas;
  c.train_batch_size = 2 * o.gas * world_size;
  c.optimizer = o.optimizer;
  c.bf16 = o.precision == Precision::bf16;
  c.fp16.enabled = o.precision == Precision::fp16;
  c.fp16.initial_scale_power = 12;
  c.gradient_clipping = 0.5;
  c.zero.stage = o.stage;
  c.zero.reduce_bucket_size = 700;
  c.zero.overlap_comm = o.stage >= 2;
  c.zero.stage3_param_persistence_threshold = 40;
  c.zero.stage3_prefetch_bucket_size = 300;
  if (o.offload) {
    c.zero.offload_optimizer.device = "cpu";
    c.zero.offload_optimizer.pin_memory = true;
    c.zero.offload_optimizer.buffer_count = o.buffer_count;
  }
  return c;
}

std::shared_ptr<Engine> make_engine(const RunOptions& o, uint64_t init_seed = 5) {
  auto world = comm::world();
  auto model = models::build_causal_lm(odd_gpt());
  model->init_weights(init_seed);
  const TileBytes tiles(o.tile_bytes);
  auto engine = initialize(model, std::make_shared<nn::CrossEntropyLoss>(), make_config(o, world->size())).engine;
  EXPECT_EQ(engine->offloads_optimizer(), o.offload);
  return engine;
}

void train(Engine& engine, data::MarkovCorpus& corpus, int steps, int64_t gas, TrainingRun& run) {
  for (int s = 0; s < steps; ++s) {
    double loss = 0;
    for (int64_t i = 0; i < gas; ++i) {
      const data::Batch b = corpus.next_batch(2, 16);
      loss += engine.forward(b.inputs, b.targets);
      engine.backward();
    }
    engine.step();
    run.losses.push_back(loss);
    run.norms.push_back(engine.last_grad_norm());
  }
}

data::MarkovCorpus corpus_of_this_rank() { return data::MarkovCorpus({37, 4, 1.0, 3, 100 + uint64_t(comm::world()->rank())}); }

TrainingRun train_gpt(const RunOptions& o, int steps) {
  auto engine = make_engine(o);
  data::MarkovCorpus corpus = corpus_of_this_rank();
  TrainingRun run;
  train(*engine, corpus, steps, o.gas, run);
  run.params = engine->full_parameters();
  run.memory = engine->memory_report();
  run.placement = engine->placement();
  run.skipped = engine->skipped_steps();
  return run;
}

bool bit_equal(const Tensor& a, const Tensor& b) {
  const Tensor x = a.to(Device::cpu()), y = b.to(Device::cpu());  // f32
  return x.nbytes() == y.nbytes() && std::memcmp(x.data<float>(), y.data<float>(), x.nbytes()) == 0;
}

void expect_same_training(const TrainingRun& got, const TrainingRun& want) {
  ASSERT_EQ(got.losses.size(), want.losses.size());
  for (size_t i = 0; i < want.losses.size(); ++i) {
    EXPECT_EQ(got.losses[i], want.losses[i]) << "loss, step " << i + 1;
    EXPECT_EQ(got.norms[i], want.norms[i]) << "grad norm, step " << i + 1;
  }
  EXPECT_EQ(got.skipped, want.skipped);
  ASSERT_EQ(got.params.size(), want.params.size());
  for (size_t i = 0; i < want.params.size(); ++i)
    EXPECT_TRUE(bit_equal(got.params[i].second, want.params[i].second)) << want.params[i].first;
}

class OffloadParity : public ::testing::TestWithParam<std::tuple<int, Precision>> {};

TEST_P(OffloadParity, BitEqualToTheSameStageWithoutOffload) {
  const auto [stage, precision] = GetParam();
  for (int64_t gas : {1, 2}) {
    RunOptions o;
    o.stage = stage;
    o.precision = precision;
    o.gas = gas;
    const TrainingRun plain = train_gpt(o, 6);
    // One tile, then tiles of 64 elements through two staging buffers (every tile waits for the
    // one two before it to have gone up).
    for (int64_t tile_bytes : {int64_t(0), int64_t(64 * 4)}) {
      SCOPED_TRACE(testing::Message() << "stage " << stage << " " << precision_name(precision) << ", accumulation "
                                      << gas << ", tile bytes " << tile_bytes);
      RunOptions off = o;
      off.offload = true;
      off.tile_bytes = tile_bytes;
      off.buffer_count = tile_bytes ? 2 : 4;
      const TrainingRun offloaded = train_gpt(off, 6);
      expect_same_training(offloaded, plain);
      // The master copy is a separate host buffer even in f32, where it otherwise aliases the parameters.
      EXPECT_GT(offloaded.memory.master_weights, 0u);
      EXPECT_EQ(offloaded.memory.optimizer_states, plain.memory.optimizer_states);
      EXPECT_GT(offloaded.memory.offload_buffers, 0u);
      EXPECT_EQ(offloaded.placement, "parameters: cpu, gradients: cpu, master weights and optimizer states: cpu (host)");
      EXPECT_EQ(plain.placement, "parameters: cpu, gradients: cpu, master weights and optimizer states: cpu");
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Stages, OffloadParity,
                         ::testing::Combine(::testing::Values(1, 2, 3),
                                            ::testing::Values(Precision::f32, Precision::bf16, Precision::fp16)),
                         [](const auto& info) {
                           return "stage" + std::to_string(std::get<0>(info.param)) + "_" +
                                  precision_name(std::get<1>(info.param));
                         });

// Every optimizer steps the offloaded tiles as it steps the whole partition: bit for bit for the
// elementwise ones; LAMB's trust ratio sums the norms of a tensor's pieces in other tiles, which
// rounds differently from one sum, so many tiles agree to rounding and one tile exactly.
TEST(OffloadOptimizers, EveryOptimizerMatchesItsRunWithoutOffload) {
  const std::vector<OptimizerConfig> optimizers = {
      {"Lion", {{"lr", 1e-3}, {"betas", {0.9, 0.99}}, {"weight_decay", 0.1}}},
      {"SGD", {{"lr", 0.05}, {"momentum", 0.9}, {"dampening", 0.2}, {"weight_decay", 1e-3}}},
      {"Adam", {{"lr", 3e-3}, {"adam_w_mode", false}, {"weight_decay", 0.01}}},
      {"LAMB", {{"lr", 1e-2}, {"weight_decay", 0.01}}},
  };
  for (const auto& opt : optimizers)
    for (int stage : {2, 3}) {
      RunOptions o;
      o.stage = stage;
      o.precision = stage == 2 ? Precision::bf16 : Precision::f32;
      o.optimizer = opt;
      const TrainingRun plain = train_gpt(o, 5);
      for (int64_t tile_bytes : {int64_t(0), int64_t(64 * 4)}) {
        SCOPED_TRACE(opt.type + ", stage " + std::to_string(stage) + ", tile bytes " + std::to_string(tile_bytes));
        RunOptions off = o;
        off.offload = true;
        off.tile_bytes = tile_bytes;
        off.buffer_count = 2;
        const TrainingRun offloaded = train_gpt(off, 5);
        if (opt.type != "LAMB" || tile_bytes == 0) {
          expect_same_training(offloaded, plain);
          continue;
        }
        for (size_t i = 0; i < plain.losses.size(); ++i)
          EXPECT_NEAR(offloaded.losses[i], plain.losses[i], 1e-5 * std::fabs(plain.losses[i])) << "step " << i + 1;
      }
    }
}

// A folder all ranks share, emptied by rank 0.
std::string fresh_dir(const std::string& name) {
  auto world = comm::world();
  const std::string dir = std::string(ZT_BINARY_DIR) + "/offload_tests/np" + std::to_string(world->size()) + "/" + name;
  if (world->rank() == 0) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
  }
  world->barrier().wait();
  return dir;
}

// A checkpoint is the same whether the optimizer was offloaded or not: saved with one setting and
// loaded into an engine with the other (and other initial weights), training goes on bit for bit
// as a run that never stopped.
TEST(OffloadCheckpoints, LoadAcrossOffloadSettings) {
  for (int stage : {1, 3})
    for (const auto& [save_offloaded, load_offloaded] : {std::pair{true, false}, {false, true}, {true, true}}) {
      SCOPED_TRACE(testing::Message() << "stage " << stage << ", saved " << (save_offloaded ? "offloaded" : "plain")
                                      << ", loaded " << (load_offloaded ? "offloaded" : "plain"));
      RunOptions o;
      o.stage = stage;
      o.precision = Precision::bf16;
      const TrainingRun straight = train_gpt(o, 8);

      const std::string dir = fresh_dir("cross_stage" + std::to_string(stage));
      RunOptions first_options = o, second_options = o;
      first_options.offload = save_offloaded;
      second_options.offload = load_offloaded;
      second_options.tile_bytes = 64 * 4;
      data::MarkovCorpus corpus = corpus_of_this_rank();
      TrainingRun run;
      {
        auto first = make_engine(first_options);
        train(*first, corpus, 4, o.gas, run);
        first->save_checkpoint(dir);
      }
      auto second = make_engine(second_options, /*init_seed=*/99);
      second->load_checkpoint(dir);
      train(*second, corpus, 4, o.gas, run);
      run.params = second->full_parameters();
      run.skipped = second->skipped_steps();
      expect_same_training(run, straight);
    }
}

}  // namespace
}  // namespace zt::engine

int main(int argc, char** argv) { return zt::comm::testing::run_mpi_tests(argc, argv); }
