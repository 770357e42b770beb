// offload_optimizer {device: cpu} and {device: nvme}: on CPU ranks the offloaded step is the same
// arithmetic as the step without offload, so every stage (1-3), in f32, bf16 and fp16, gives
// bit-equal losses, gradient norms and parameters with and without it, with the partition in one
// tile or in many small ones (ZT_OFFLOAD_TILE_BYTES) cycling through two staging buffers, for every
// optimizer, and on NVMe with one sub-group or many through as few swap buffers as one sub-group
// needs. The host memory counters show what stays resident; the engine says where each model state
// lives; the swap files live under nvme_path while the engine does; checkpoints load across
// offload settings.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "bit_equal.hpp"
#include "../comm/mpi_test_main.hpp"
#include "odd_gpt.hpp"
#include "zt/core/storage.hpp"
#include "zt/data/markov_corpus.hpp"
#include "zt/engine/engine.hpp"
#include "zt/models/causal_lm.hpp"

namespace zt::engine {
namespace {

using test::bit_equal;

using test::odd_gpt;

enum class Precision { f32, bf16, fp16 };

const char* precision_name(Precision p) { return p == Precision::f32 ? "f32" : (p == Precision::bf16 ? "bf16" : "fp16"); }

struct RunOptions {
  int stage = 1;
  Precision precision = Precision::f32;
  bool offload = false;
  std::string nvme_path;   // with offload: swap to NVMe under this folder
  int64_t sub_group_size = 1000000000;
  models::TransformerConfig model = odd_gpt();
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
  c.zero.sub_group_size = o.sub_group_size;
  if (o.offload) {
    c.zero.offload_optimizer.device = o.nvme_path.empty() ? "cpu" : "nvme";
    c.zero.offload_optimizer.nvme_path = o.nvme_path;
    c.zero.offload_optimizer.pin_memory = true;
    c.zero.offload_optimizer.buffer_count = o.buffer_count;
    c.aio.block_size = 8192;  // several requests per sub-group even at these sizes
    c.aio.queue_depth = 4;
  }
  return c;
}

std::shared_ptr<Engine> make_engine(const RunOptions& o, uint64_t init_seed = 5) {
  auto world = comm::world();
  auto model = models::build_causal_lm(o.model);
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

// A folder all ranks share, emptied by rank 0.
std::string fresh_dir(const std::string& name) {
  auto world = comm::world();
  const std::string dir = std::string(ZT_BINARY_DIR) + "/offload_tests/np" + std::to_string(world->size()) + "/" + name;
  world->barrier().wait();  // every rank's engines of the last test are gone (and their swap folders)
  if (world->rank() == 0) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
  }
  world->barrier().wait();
  return dir;
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
      EXPECT_EQ(offloaded.placement, "parameters: cpu, gradients: cpu, master weights and optimizer states: cpu (host), "
                                     "activations: kept for backward");
      EXPECT_EQ(plain.placement, "parameters: cpu, gradients: cpu, master weights and optimizer states: cpu, "
                                 "activations: kept for backward");
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

// A checkpoint is the same whether the optimizer was offloaded (to the host or to NVMe) or not:
// saved with one setting and loaded into an engine with another (and other initial weights),
// training goes on bit for bit as a run that never stopped.
TEST(OffloadCheckpoints, LoadAcrossOffloadSettings) {
  enum Where { plain, host, nvme };
  const char* names[] = {"plain", "host", "nvme"};
  const std::string swap = fresh_dir("checkpoint_swap");
  for (int stage : {1, 3})
    for (const auto& [saved, loaded] : {std::pair{host, plain}, {plain, host}, {host, host}, {nvme, plain},
                                        {plain, nvme}, {nvme, nvme}, {host, nvme}}) {
      SCOPED_TRACE(testing::Message() << "stage " << stage << ", saved " << names[saved] << ", loaded " << names[loaded]);
      RunOptions o;
      o.stage = stage;
      o.precision = Precision::bf16;
      const TrainingRun straight = train_gpt(o, 8);

      const std::string dir = fresh_dir("cross_stage" + std::to_string(stage));
      const auto as = [&](Where w, int64_t sub_group) {
        RunOptions r = o;
        r.offload = w != plain;
        r.nvme_path = w == nvme ? swap : "";
        r.sub_group_size = sub_group;
        r.tile_bytes = 64 * 4;
        return r;
      };
      data::MarkovCorpus corpus = corpus_of_this_rank();
      TrainingRun run;
      {
        auto first = make_engine(as(saved, 500));
        train(*first, corpus, 4, o.gas, run);
        first->save_checkpoint(dir);
      }
      auto second = make_engine(as(loaded, 333), /*init_seed=*/99);  // other sub-groups than the save's
      second->load_checkpoint(dir);
      train(*second, corpus, 4, o.gas, run);
      run.params = second->full_parameters();
      run.skipped = second->skipped_steps();
      expect_same_training(run, straight);
    }
}

// ---- offload_optimizer {device: nvme} -----------------------------------------------------------

// On CPU ranks the NVMe path is the host path with the master and states passing through swap
// buffers: bit-equal to no offload at every stage, one sub-group or many (tiles inside them),
// with as few buffers as one sub-group needs (no read-ahead), one spare (the next master read
// ahead) or two sub-groups' worth (the next sub-group read while one steps).
class NvmeParity : public ::testing::TestWithParam<std::tuple<int, Precision>> {};

TEST_P(NvmeParity, BitEqualToTheSameStageWithoutOffload) {
  const auto [stage, precision] = GetParam();
  const std::string swap = fresh_dir("nvme_parity");
  RunOptions o;
  o.stage = stage;
  o.precision = precision;
  o.gas = 2;
  const TrainingRun plain = train_gpt(o, 5);
  struct Setting {
    int64_t sub_group, buffers, tile_bytes;
  };
  for (const Setting& c : {Setting{1000000000, 4, 0}, {256, 3, 256}, {300, 4, 64 * 4}, {256, 6, 512}}) {
    SCOPED_TRACE(testing::Message() << "stage " << stage << " " << precision_name(precision) << ", sub_group_size "
                                    << c.sub_group << ", buffer_count " << c.buffers << ", tile bytes " << c.tile_bytes);
    RunOptions off = o;
    off.offload = true;
    off.nvme_path = swap;
    off.sub_group_size = c.sub_group;
    off.buffer_count = c.buffers;
    off.tile_bytes = c.tile_bytes;
    const TrainingRun run = train_gpt(off, 5);
    expect_same_training(run, plain);
    EXPECT_EQ(run.memory.master_weights, 0u);
    EXPECT_EQ(run.memory.optimizer_states, 0u);
    EXPECT_GT(run.memory.nvme, 0u);
    const std::string want = "parameters: cpu, gradients: cpu, master weights and optimizer states: nvme (" + swap +
                             "/zt_optimizer_rank" + std::to_string(comm::world()->rank()) + "_pid";
    EXPECT_EQ(run.placement.substr(0, want.size()), want);
  }
}

INSTANTIATE_TEST_SUITE_P(Stages, NvmeParity,
                         ::testing::Combine(::testing::Values(1, 2, 3), ::testing::Values(Precision::f32, Precision::bf16)),
                         [](const auto& info) {
                           return "stage" + std::to_string(std::get<0>(info.param)) + "_" +
                                  precision_name(std::get<1>(info.param));
                         });

models::TransformerConfig wider_gpt() {
  models::TransformerConfig c = odd_gpt();
  c.hidden_size = 48;
  c.num_heads = c.num_kv_heads = 4;
  c.intermediate_size = 96;
  return c;
}

// Under a small memory budget (sub-groups of 1024 elements, 6 swap buffers of 4 KiB) the rank holds
// no master weights or optimizer states beyond the swap buffers: measured by the host memory
// counters, the engine holds 12 bytes a parameter less than the same engine offloaded to the host
// (plus the buffers), and a step allocates nothing of the kind.
TEST(OffloadNvme, ResidentOptimizerStateStaysWithinTheSwapBuffers) {
  const std::string swap = fresh_dir("nvme_budget");
  RunOptions o;
  o.stage = 2;
  o.precision = Precision::bf16;
  o.model = wider_gpt();
  o.offload = true;
  o.sub_group_size = 1024;
  o.buffer_count = 6;
  o.tile_bytes = 1024;
  const size_t budget = size_t(o.buffer_count) * 1024 * 4;  // each buffer one sub-group of f32
  struct Held {
    size_t engine = 0, step_peak = 0;
    zero::MemoryReport memory;
    int64_t partition = 0;
  };
  const auto measure = [&](const std::string& nvme_path) {
    RunOptions r = o;
    r.nvme_path = nvme_path;
    const size_t before = host_bytes_allocated();
    auto engine = make_engine(r);
    data::MarkovCorpus corpus = corpus_of_this_rank();
    Held h;
    for (int s = 0; s < 3; ++s) {
      const data::Batch b = corpus.next_batch(2, 16);
      engine->forward(b.inputs, b.targets);
      engine->backward();
      const size_t at = host_bytes_allocated();
      reset_host_bytes_peak();
      engine->step();
      h.step_peak = std::max(h.step_peak, host_bytes_peak() - at);
    }
    h.engine = host_bytes_allocated() - before;
    h.memory = engine->memory_report();
    h.partition = engine->layout().partition_size();
    return h;
  };
  measure("");  // caches that outlive an engine (the communication backend's) are made here, not below
  const Held host = measure(""), nvme = measure(swap);
  const size_t states = size_t(nvme.partition) * 12;  // f32 master, exp_avg, exp_avg_sq
  ASSERT_GT(states, 4 * budget) << "the model is too small for the budget to mean anything";
  EXPECT_EQ(nvme.memory.master_weights + nvme.memory.optimizer_states, 0u);
  EXPECT_EQ(host.memory.master_weights + host.memory.optimizer_states, states);
  EXPECT_EQ(nvme.memory.offload_buffers, host.memory.offload_buffers + budget);
  EXPECT_EQ(host.engine - nvme.engine, states - budget) << "host offload holds " << host.engine << " bytes, nvme "
                                                        << nvme.engine;
  EXPECT_LE(nvme.step_peak, size_t(64) << 10) << "a step allocated master or state memory";
  EXPECT_EQ(nvme.memory.nvme, size_t((nvme.partition + 1023) / 1024) * 4096 * 3);
}

std::vector<std::string> listing(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// Each rank swaps in a folder of its own under nvme_path, which holds the master and one file per
// optimizer state, and which goes when the engine does.
TEST(OffloadNvme, SwapFilesLiveUnderNvmePathWhileTheEngineDoes) {
  const std::string swap = fresh_dir("nvme_files");
  const std::string mine = "zt_optimizer_rank" + std::to_string(comm::world()->rank()) + "_pid" + std::to_string(::getpid());
  RunOptions o;
  o.stage = 3;
  o.offload = true;
  o.nvme_path = swap;
  o.sub_group_size = 500;
  {
    auto engine = make_engine(o);
    data::MarkovCorpus corpus = corpus_of_this_rank();
    TrainingRun run;
    EXPECT_EQ(listing(swap + "/" + mine), (std::vector<std::string>{"exp_avg.swp", "exp_avg_sq.swp", "master.swp"}));
    train(*engine, corpus, 2, 1, run);
    const int64_t groups = (engine->layout().partition_size() + 499) / 500;
    for (const char* f : {"master.swp", "exp_avg.swp", "exp_avg_sq.swp"})
      EXPECT_EQ(std::filesystem::file_size(swap + "/" + mine + "/" + f), uint64_t(groups) * 4096) << f;
  }
  EXPECT_FALSE(std::filesystem::exists(swap + "/" + mine));
  comm::world()->barrier().wait();
  if (comm::world()->rank() == 0) EXPECT_TRUE(std::filesystem::is_empty(swap));
}

std::string initialize_error(const RunOptions& o) {
  try {
    make_engine(o);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(OffloadNvme, ABadNvmePathIsNamed) {
  RunOptions o;
  o.stage = 2;
  o.offload = true;
  o.nvme_path = "/nonexistent_zt_nvme";
  EXPECT_NE(initialize_error(o).find("zero_optimization.offload_optimizer.nvme_path = \"/nonexistent_zt_nvme\": no "
                                     "such folder"),
            std::string::npos)
      << initialize_error(o);
  o.nvme_path = "/proc";  // not writable, even by root
  EXPECT_NE(initialize_error(o).find("zero_optimization.offload_optimizer.nvme_path = \"/proc\" is not writable: "
                                     "cannot create /proc/zt_optimizer_rank"),
            std::string::npos)
      << initialize_error(o);
  o.nvme_path = "/dev/null";
  EXPECT_NE(initialize_error(o).find("nvme_path = \"/dev/null\" is not a folder"), std::string::npos);
  o.nvme_path = fresh_dir("nvme_errors");
  o.buffer_count = 2;
  EXPECT_NE(initialize_error(o).find("buffer_count = 2: NVMe offload needs at least 3 buffers for AdamW"),
            std::string::npos)
      << initialize_error(o);
}

// LAMB needs every part of the partition before it updates any: with NVMe offload the partition is
// one sub-group (and then it matches LAMB without offload), more is refused.
TEST(OffloadNvme, LambNeedsOneSubGroup) {
  RunOptions o;
  o.stage = 2;
  o.optimizer = {"LAMB", {{"lr", 1e-2}, {"weight_decay", 0.01}}};
  const TrainingRun plain = train_gpt(o, 4);
  RunOptions off = o;
  off.offload = true;
  off.nvme_path = fresh_dir("nvme_lamb");
  expect_same_training(train_gpt(off, 4), plain);
  off.sub_group_size = 256;
  EXPECT_NE(initialize_error(off).find("with NVMe offload the partition must be one sub-group: set "
                                       "zero_optimization.sub_group_size to at least"),
            std::string::npos)
      << initialize_error(off);
}

}  // namespace
}  // namespace zt::engine

int main(int argc, char** argv) { return zt::comm::testing::run_mpi_tests(argc, argv); }
