// CudaGraph: a captured function's work replays on whatever its buffers hold at each launch, its
// host side runs once, its launch hooks run after every launch (replay false the first time);
// allocations that outlive the capture are counted and stop a second launch; a copy from the host
// inside a capture is refused with an error naming it, and the stream works afterwards. Outside
// a capture nothing is registered. The GPU tests skip without a GPU.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "zt/core/cuda_graph.hpp"
#include "zt/core/device.hpp"
#include "zt/core/queued_readback.hpp"
#include "zt/kernels/ops.hpp"

namespace zt {
namespace {

TEST(CudaGraph, NothingIsRegisteredOutsideACapture) {
  EXPECT_FALSE(capturing_graph());
  EXPECT_FALSE(on_graph_launch([](bool) {}));
  CudaGraph graph;
  EXPECT_FALSE(graph.captured());
}

class CudaGraphCuda : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_is_available()) GTEST_SKIP() << "no CUDA device here: this test runs on a GPU machine (scripts/gpu-test)";
  }
};

TEST_F(CudaGraphCuda, ReplaysOnTheBuffersPresentValues) {
  const Device gpu = Device::cuda(0);
  const int64_t n = 1 << 20;
  const Tensor x = Tensor::empty({n}, DType::f32, gpu), y = Tensor::empty({n}, DType::f32, gpu);
  int host_runs = 0;
  std::vector<bool> hook_calls;
  CudaGraph graph;
  graph.capture([&] {
    EXPECT_TRUE(capturing_graph());
    ++host_runs;
    const Tensor scratch = Tensor::empty({n}, DType::f32, gpu);  // freed inside: the graph's own memory
    scratch.copy_from(x);
    ops::scale_(scratch, 2.0);
    y.copy_from(scratch);
    EXPECT_TRUE(on_graph_launch([&](bool replay) { hook_calls.push_back(replay); }));
  });
  EXPECT_FALSE(capturing_graph());
  ASSERT_TRUE(graph.captured());
  EXPECT_GE(graph.nodes(), 3u);
  EXPECT_EQ(graph.outlived_allocations(), 0u);
  for (int round = 0; round < 3; ++round) {
    x.fill_(1.5 + round);
    y.fill_(-1.0);
    graph.launch();
    for (float v : y.to_floats()) ASSERT_EQ(v, float(2 * (1.5 + round))) << "round " << round;
  }
  EXPECT_EQ(host_runs, 1);
  EXPECT_EQ(graph.launches(), 3);
  EXPECT_EQ(hook_calls, (std::vector<bool>{false, true, true}));
}

// A readback queued inside the capture and marked again after each launch (as the cross-entropy's
// losses are) waits for that launch's copy: behind a long kernel, a wait that did not would read
// the round before's value.
TEST_F(CudaGraphCuda, AReadbackQueuedInsideWaitsForEachLaunch) {
  const Device gpu = Device::cuda(0);
  const int64_t n = int64_t(1) << 26;  // 256 MiB of f32: each pass takes ~0.1 ms
  const Tensor big = Tensor::empty({n}, DType::f32, gpu);
  QueuedReadback readback;
  readback.queue(big.view(size_t(n - 4), {4}));  // its pinned buffer made outside the capture
  readback.wait();
  CudaGraph graph;
  graph.capture([&] {
    for (int pass = 0; pass < 20; ++pass) ops::scale_(big, 1.0);
    ops::scale_(big, 2.0);
    readback.queue(big.view(size_t(n - 4), {4}));
    on_graph_launch([&](bool) { readback.requeued(); });
  });
  for (int round = 0; round < 4; ++round) {
    big.fill_(double(round + 1));
    graph.launch();
    ASSERT_TRUE(readback.pending());
    EXPECT_EQ(readback.wait().to_floats(), std::vector<float>(4, float(2 * (round + 1)))) << "round " << round;
  }
}

TEST_F(CudaGraphCuda, CountsAllocationsThatOutliveItAndRunsThemOnce) {
  const Device gpu = Device::cuda(0);
  Tensor kept;
  const Tensor fours = Tensor::empty({256}, DType::f32, gpu);
  fours.fill_(4.0);
  CudaGraph graph;
  graph.capture([&] {
    kept = Tensor::empty({256}, DType::f32, gpu);
    kept.copy_from(fours);
  });
  EXPECT_EQ(graph.outlived_allocations(), 1u);
  EXPECT_EQ(graph.outlived_bytes(), 1024u);
  graph.launch();
  EXPECT_EQ(kept.to_floats()[255], 4.0f);
  try {
    graph.launch();
    ADD_FAILURE() << "a second launch of a graph whose memory outlives it was accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("outlive"), std::string::npos) << e.what();
  }
  kept = Tensor();  // freed outside the graph, as a graph's allocation may be
}

TEST_F(CudaGraphCuda, RefusesACopyFromTheHostAndLeavesTheStreamUsable) {
  const Device gpu = Device::cuda(0);
  const Tensor d = Tensor::empty({4}, DType::f32, gpu);
  CudaGraph graph;
  try {
    graph.capture([&] { d.copy_from(Tensor::from_floats({4}, {1, 2, 3, 4}, DType::f32)); });
    ADD_FAILURE() << "a host-to-device copy inside a capture was accepted";
  } catch (const std::exception& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("capturing the step into a CUDA graph failed"), std::string::npos) << what;
    EXPECT_NE(what.find("from the host to the device"), std::string::npos) << what;
  }
  EXPECT_FALSE(capturing_graph());
  EXPECT_FALSE(graph.captured());
  d.copy_from(Tensor::from_floats({4}, {5, 6, 7, 8}, DType::f32));
  EXPECT_EQ(d.to_floats(), (std::vector<float>{5, 6, 7, 8}));
}

}  // namespace
}  // namespace zt
