// Losses: the end of a model's forward. A loss is not a Module (it has no parameters): forward
// returns the scalar, backward the gradient of (grad_scale * loss) with respect to the prediction.
#pragma once

#include <memory>
#include <utility>
#include <vector>

#include "zt/core/queued_readback.hpp"
#include "zt/core/tensor.hpp"

namespace zt::nn {

class Loss {
 public:
  virtual ~Loss() = default;
  // Computes the mean loss; the gradient for backward is computed in the same pass, for an
  // upstream factor grad_scale (1/accumulation steps, the fp16 loss scale...). target is where
  // the caller has it (the engine passes the batch's host tensor): a loss moves it to pred's
  // device itself, after any host-side work on it.
  virtual double forward(const Tensor& pred, const Tensor& target, double grad_scale = 1.0) = 0;
  virtual Tensor backward() = 0;
  // The same forward with the scalar read later, by take_queued: on a GPU the host then queues
  // the backward without waiting for the forward to finish. Losses without a device-side value
  // compute it at once.
  virtual void forward_queued(const Tensor& pred, const Tensor& target, double grad_scale = 1.0) {
    queued_.push_back(forward(pred, target, grad_scale));
  }
  // The losses of the forward_queued calls since the last take, in call order (waits for them).
  virtual std::vector<double> take_queued() { return std::exchange(queued_, {}); }

 private:
  std::vector<double> queued_;
};

// Softmax cross-entropy over the last dimension, mean over targets that are not -100.
// pred (..., V) logits, target (...) int32. With in_place_grad the gradient overwrites the
// logits (they are not needed after the loss), saving an (N, V) buffer. The targets are counted
// where the logits are (a kernel on a GPU), so that the forward queues nothing that depends on a
// host value of the batch (a CUDA graph can replay it: the pending losses of a replayed forward
// are registered by the graph's launch).
class CrossEntropyLoss : public Loss {
 public:
  explicit CrossEntropyLoss(bool in_place_grad = false) : in_place_grad_(in_place_grad) {}
  double forward(const Tensor& logits, const Tensor& targets, double grad_scale = 1.0) override;
  Tensor backward() override;
  void forward_queued(const Tensor& logits, const Tensor& targets, double grad_scale = 1.0) override;
  std::vector<double> take_queued() override;

 private:
  // What one queued forward of a step writes, kept step after step (the n-th forward of a step
  // uses the n-th slot): the buffers' addresses stay the same, as a replayed graph needs.
  struct Slot {
    Tensor losses;           // (N) on the logits' device, stats dtype
    Tensor count_and_dloss;  // (2) f32 there: the targets not ignored and the gradient's factor
    QueuedReadback losses_back, count_back;
  };
  // Queues the fused kernel and the copies of its per-row losses and count to the host; waits for
  // nothing. Returns the slot it used.
  size_t queue_rows(const Tensor& logits, const Tensor& targets, double grad_scale);
  double mean_of(size_t slot);  // waits for the copies (the stream is usually long past them)

  bool in_place_grad_;
  Tensor dlogits_;
  std::vector<size_t> pending_;  // the slots of the queued forwards not yet taken
  std::vector<std::unique_ptr<Slot>> slots_;
};

// Mean squared error over all elements.
class MSELoss : public Loss {
 public:
  double forward(const Tensor& pred, const Tensor& target, double grad_scale = 1.0) override;
  Tensor backward() override;

 private:
  Tensor dpred_;
};

}  // namespace zt::nn
