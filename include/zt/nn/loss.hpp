// Losses: the end of a model's forward. A loss is not a Module (it has no parameters): forward
// returns the scalar, backward the gradient of (grad_scale * loss) with respect to the prediction.
#pragma once

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
};

// Softmax cross-entropy over the last dimension, mean over targets that are not -100.
// pred (..., V) logits, target (...) int32. With in_place_grad the gradient overwrites the
// logits (they are not needed after the loss), saving an (N, V) buffer.
class CrossEntropyLoss : public Loss {
 public:
  explicit CrossEntropyLoss(bool in_place_grad = false) : in_place_grad_(in_place_grad) {}
  double forward(const Tensor& logits, const Tensor& targets, double grad_scale = 1.0) override;
  Tensor backward() override;
  int64_t last_count() const { return count_; }  // targets counted by the last forward

 private:
  bool in_place_grad_;
  Tensor dlogits_;
  int64_t count_ = 0;
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
