// offload_param {device: cpu} at stage 3: this rank's parameter partition lives in a host store
// and each module's parameters are fetched from it (copied into place, or into a staging buffer
// and all-gathered) before the module runs. On CPU ranks that is the arithmetic of stage 3
// without offload, so losses, gradient norms and parameters are bit-equal with and without it,
// in f32 and bf16, with and without offload_optimizer, at every world size the test runs on;
// the engine says where the parameters live, and the fetch buffers stay within buffer_count.
// offload_param {device: nvme} is held to the same, with its partition in a file per rank.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

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
                             "optimizer states: " + states + ", activations: kept for backward");
    EXPECT_EQ(want.placement, "parameters: cpu, gradients: cpu, master weights and optimizer states: " + states +
                                  ", activations: kept for backward");
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

// offload_param {device: nvme}: the partition in a file per rank (after the first max_in_cpu
// elements, which stay in host memory), read per module into buffer_count host buffers.
std::string nvme_dir(const std::string& name) {
  auto world = comm::world();
  const std::string dir =
      std::string(ZT_BINARY_DIR) + "/param_offload_nvme/np" + std::to_string(world->size()) + "/" + name;
  if (world->rank() == 0) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
  }
  world->barrier().wait();
  return dir;
}

OffloadConfig nvme_offload(const std::string& dir, int64_t max_in_cpu, int64_t buffer_count) {
  OffloadConfig o;
  o.device = "nvme";
  o.nvme_path = dir;
  o.pin_memory = true;
  o.max_in_cpu = max_in_cpu;
  o.buffer_count = buffer_count;
  return o;
}

int files_in(const std::string& dir) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) n += e.is_regular_file();
  return n;
}

class ParamOffloadNvmeParity : public ::testing::TestWithParam<std::tuple<bool, bool, int64_t>> {};

TEST_P(ParamOffloadNvmeParity, BitEqualToStageThreeWithoutIt) {
  const auto [bf16, offload_optimizer, max_in_cpu] = GetParam();
  auto world = comm::world();
  const std::string dir = nvme_dir(std::string(bf16 ? "bf16" : "f32") + (offload_optimizer ? "_opt_" : "_") +
                                   std::to_string(max_in_cpu));
  for (int64_t gas : {1, 2}) {
    SCOPED_TRACE(testing::Message() << (bf16 ? "bf16" : "f32") << (offload_optimizer ? ", offload_optimizer" : "")
                                    << ", max_in_cpu " << max_in_cpu << ", accumulation " << gas);
    const Setting plain{bf16, offload_optimizer, OffloadConfig{}, gas};
    Setting offloaded = plain;
    offloaded.offload_param = nvme_offload(dir, max_in_cpu, 2);  // read buffers are reused within a step
    const TrainingRun want = train_gpt(plain, 6);
    const TrainingRun got = train_gpt(offloaded, 6);
    expect_bit_equal(got, want);
    const size_t partition = want.memory.parameters, element = bf16 ? 2 : 4;
    const size_t in_memory = std::min<size_t>(size_t(max_in_cpu) * element, partition);
    EXPECT_EQ(got.memory.parameters_place, zero::ParamPlace::nvme);
    EXPECT_EQ(got.memory.parameters, in_memory);
    EXPECT_EQ(got.memory.parameters_in_file, partition - in_memory);
    EXPECT_NE(got.placement.find("parameters: nvme (" + dir + "/zt_params_rank"), std::string::npos) << got.placement;
    EXPECT_NE(got.placement.find(", fetched per module, gradients: cpu"), std::string::npos) << got.placement;
  }
  world->barrier().wait();
  EXPECT_EQ(files_in(dir), 0) << "the parameter files outlived their engines";
}

INSTANTIATE_TEST_SUITE_P(Precisions, ParamOffloadNvmeParity,
                         ::testing::Combine(::testing::Bool(), ::testing::Bool(), ::testing::Values(0, 100)),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param) ? "bf16" : "f32") +
                                  (std::get<1>(info.param) ? "_offload_optimizer" : "") + "_max_in_cpu_" +
                                  std::to_string(std::get<2>(info.param));
                         });

// What stays in host memory is the buffers, not the partition: measured by the host allocation
// counter against the same engine with its partition in host memory.
TEST(ParamOffloadNvme, HostMemoryHoldsOnlyTheBuffers) {
  auto world = comm::world();
  const std::string dir = nvme_dir("resident");
  models::TransformerConfig wide = odd_gpt();
  wide.hidden_size = 24;
  wide.num_layers = 4;
  wide.intermediate_size = 64;
  const int64_t buffer_size = 24 * 72;  // the largest parameter (c_attn's weight) fits one buffer
  struct Measured {
    size_t host_bytes = 0;
    zero::MemoryReport memory;
    std::vector<double> losses;
  };
  auto run = [&](const OffloadConfig& offload) {
    Measured m;
    auto model = models::build_causal_lm(wide);
    model->init_weights(5);
    Setting s;
    s.offload_param = offload;
    s.offload_param.buffer_size = buffer_size;
    const size_t before = host_bytes_allocated();
    auto engine = initialize(model, std::make_shared<nn::CrossEntropyLoss>(), stage3_config(s, world->size())).engine;
    data::MarkovCorpus corpus({37, 4, 1.0, 3, 100 + uint64_t(world->rank())});
    for (int step = 0; step < 2; ++step) m.losses.push_back(engine->train_batch(corpus, 16));
    m.memory = engine->memory_report();
    m.host_bytes = host_bytes_allocated() - before;
    return m;
  };
  const Measured host = run(param_offload(1));
  const Measured nvme = run(nvme_offload(dir, 0, 1));
  EXPECT_EQ(nvme.losses, host.losses);
  EXPECT_EQ(nvme.memory.parameters, 0u);
  EXPECT_EQ(nvme.memory.parameters_in_file, host.memory.parameters);
  // Buffers: two for writing (buffer_size elements at most), one read buffer and, at more than
  // one rank, one staging buffer (the largest piece each).
  const size_t element = 4, piece = size_t(buffer_size) * element;
  EXPECT_LE(nvme.memory.parameter_buffers, 2 * piece + piece + (world->size() > 1 ? piece : 0));
  EXPECT_LT(nvme.memory.parameter_buffers, host.memory.parameters) << "the buffers are not smaller than the partition";
  // The host counter sees the partition gone and the buffers in its place (64-byte rounding).
  const double expected = double(host.memory.parameters + host.memory.parameter_buffers) -
                          double(nvme.memory.parameters + nvme.memory.parameter_buffers);
  EXPECT_NEAR(double(host.host_bytes) - double(nvme.host_bytes), expected, 64.0 * 8)
      << "host bytes held: partition in memory " << host.host_bytes << ", in the file " << nvme.host_bytes;
}

// Engines of one process given the same folder keep a file each: the second one's start does
// not overwrite the first one's parameters.
TEST(ParamOffloadNvme, TwoEnginesShareAFolderNotAFile) {
  auto world = comm::world();
  const std::string dir = nvme_dir("two_engines");
  Setting s;
  s.offload_param = nvme_offload(dir, 0, 2);
  auto make = [&](uint64_t seed, const Setting& setting) {
    auto model = models::build_causal_lm(odd_gpt());
    model->init_weights(seed);
    return initialize(model, std::make_shared<nn::CrossEntropyLoss>(), stage3_config(setting, world->size())).engine;
  };
  auto losses = [&](Engine& engine, data::MarkovCorpus& corpus, int steps) {
    std::vector<double> out;
    for (int i = 0; i < steps; ++i) out.push_back(engine.train_batch(corpus, 16));
    return out;
  };
  auto plain = make(5, Setting{});
  data::MarkovCorpus plain_data({37, 4, 1.0, 3, 100 + uint64_t(world->rank())});
  const auto want = losses(*plain, plain_data, 6);

  auto first = make(5, s);
  data::MarkovCorpus first_data({37, 4, 1.0, 3, 100 + uint64_t(world->rank())});
  auto got = losses(*first, first_data, 3);
  auto second = make(9, s);  // other weights, written to its own file
  data::MarkovCorpus second_data({37, 4, 1.0, 3, 7});
  losses(*second, second_data, 2);
  const auto rest = losses(*first, first_data, 3);
  got.insert(got.end(), rest.begin(), rest.end());
  EXPECT_EQ(got, want);
  EXPECT_EQ(files_in(dir), 2 * world->size());
  world->barrier().wait();  // every rank counted before any removes its files
}

// A bad nvme_path is an error naming the key, on every rank (no rank left in a collective).
TEST(ParamOffloadNvme, BadPathIsAnErrorNamingTheKey) {
  auto world = comm::world();
  const std::string dir = nvme_dir("bad_path");
  const std::string not_a_folder = dir + "/a_file";
  if (world->rank() == 0) std::ofstream(not_a_folder) << "x";
  world->barrier().wait();
  for (const std::string& path : {not_a_folder, not_a_folder + "/below"}) {
    Setting s;
    s.offload_param = nvme_offload(path, 0, 2);
    auto model = models::build_causal_lm(odd_gpt());
    model->init_weights(5);
    try {
      initialize(model, std::make_shared<nn::CrossEntropyLoss>(), stage3_config(s, world->size()));
      ADD_FAILURE() << "nvme_path " << path << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("zero_optimization.offload_param.nvme_path = \"" + path + "\""),
                std::string::npos)
          << e.what();
    }
  }
}

}  // namespace
}  // namespace zt::engine

int main(int argc, char** argv) { return zt::comm::testing::run_mpi_tests(argc, argv); }
