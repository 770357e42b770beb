#include "step_graph.hpp"

#include <algorithm>

#include "zt/core/log.hpp"

namespace zt::engine {

namespace {

bool same_shapes(const std::vector<std::pair<Tensor, Tensor>>& buffers, const std::vector<data::Batch>& batches,
                 Device device) {
  if (buffers.size() != batches.size()) return false;
  for (size_t i = 0; i < batches.size(); ++i) {
    const auto& [inputs, targets] = buffers[i];
    if (inputs.shape() != batches[i].inputs.shape() || targets.shape() != batches[i].targets.shape() ||
        inputs.device() != device)
      return false;
  }
  return true;
}

}  // namespace

const std::vector<std::pair<Tensor, Tensor>>& StepGraph::stage(const std::vector<data::Batch>& batches, Device device) {
  if (!same_shapes(buffers_, batches, device)) {
    reset();
    buffers_.clear();
    for (const data::Batch& b : batches) {
      ZT_CHECK(b.inputs.dtype() == DType::i32 && b.targets.dtype() == DType::i32,
               "a batch's inputs and targets must be int32, got ", b.inputs.describe(), " and ", b.targets.describe());
      buffers_.emplace_back(Tensor::empty(b.inputs.shape(), DType::i32, device),
                            Tensor::empty(b.targets.shape(), DType::i32, device));
    }
  }
  // Queued on the compute stream behind the last step's work, which has read the buffers.
  for (size_t i = 0; i < batches.size(); ++i) {
    buffers_[i].first.copy_from(batches[i].inputs);
    buffers_[i].second.copy_from(batches[i].targets);
  }
  return buffers_;
}

void StepGraph::reset() {
  graph_.reset();
  eager_left_ = warmup_steps_;
}

StepGraph::Ran StepGraph::run(const std::function<void()>& body) {
  if (given_up_ || eager_left_ > 0) {
    eager_left_ = std::max(0, eager_left_ - 1);
    body();
    return Ran::eager;
  }
  if (graph_) {
    graph_->launch();
    return Ran::replayed;
  }
  graph_ = std::make_unique<CudaGraph>();
  graph_->capture(body);
  graph_->launch();
  if (graph_->outlived_allocations() > 0) {
    log_warn("the step's CUDA graph left ", graph_->outlived_allocations(), " allocations (", graph_->outlived_bytes(),
             " bytes) alive after it, so it cannot be replayed; the steps after this one run without a graph");
    given_up_ = true;
  }
  return Ran::captured;
}

std::string StepGraph::describe() const {
  if (given_up_) return "forward and backward: eager (the CUDA graph could not be replayed)";
  return str("forward and backward: one CUDA graph, captured after ", warmup_steps_, " eager steps");
}

}  // namespace zt::engine
