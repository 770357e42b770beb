// A training step's forwards and backwards as one CUDA graph (zt/core/cuda_graph.hpp), replayed
// step after step: one launch instead of ~1,000, and no gap between kernels for the host's
// launches or another stream's events. The optimizer's step stays outside the graph (its learning
// rate and step count change from step to step), and so does starting the gradients' window
// (GradReducer::zero).
//
//   StepGraph graph;
//   const auto& on_device = graph.stage(batches, device);  // the batches into the graph's buffers
//   graph.run([&] { for (auto& [in, tgt] : on_device) { forward(in, tgt); backward(); } });
//
// The first warmup_steps run the body eagerly, reading the same device buffers: cuBLASLt's and
// cuDNN's choices, the memory pool and the buffers made on first use are settled by the capture.
// The body's host side then runs once more, inside the capture; replays do not run it at all, so
// everything it does on the host must be the same every step (the caller accounts for the
// micro-steps), and what differs (the batch) is read from device memory.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "zt/core/cuda_graph.hpp"
#include "zt/data/dataset.hpp"

namespace zt::engine {

class StepGraph {
 public:
  enum class Ran { eager, captured, replayed };

  explicit StepGraph(int warmup_steps = 2) : warmup_steps_(warmup_steps), eager_left_(warmup_steps) {}

  // Copies each batch (host or device tensors) into the graph's device buffers, the same buffers
  // every step, and returns them (inputs, targets). Batches of another count or shape than the
  // last step's drop the graph: it is captured again after as many warm-up steps.
  const std::vector<std::pair<Tensor, Tensor>>& stage(const std::vector<data::Batch>& batches, Device device);
  // Runs body: eagerly while warming up (or after the graph was given up), captured and launched
  // at the step after, launched again after that.
  Ran run(const std::function<void()>& body);
  // The graph is captured again, after warming up, at a later step (new buffers, new parameters).
  void reset();

  int64_t replays() const { return graph_ ? std::max<int64_t>(0, graph_->launches() - 1) : 0; }
  // What this step runs as, for the engine's placement line.
  std::string describe() const;

 private:
  int warmup_steps_;
  int eager_left_;  // eager steps before the next capture
  bool given_up_ = false;  // a capture left allocations outliving it: eager from then on
  std::unique_ptr<CudaGraph> graph_;
  std::vector<std::pair<Tensor, Tensor>> buffers_;
};

}  // namespace zt::engine
