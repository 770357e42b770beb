// Gradient clipping with the norm left on the GPU: the sum of squares, the clip factor and the
// optimizer's update are queued one after the other, and the host reads the norm later (for the
// log), so that no host round trip sits between a step's backward and its update.
//
//   QueuedClip clip(device);
//   target.queued_scale = clip.queue(grads, max_norm, world * loss_scale, step);
//   optimizer.step({target}, lr, 1.0);   // AdamW reads the factor when its kernel runs
//   double norm = clip.take_norm();      // waits for the sum only; throws if it is not finite
//
// A non-finite norm makes the factor NaN, and AdamW then leaves the parameters and moments as
// they were; take_norm() reports it as the host path's error does.
#pragma once

#include <cstdint>

#include "zt/core/queued_readback.hpp"
#include "zt/core/tensor.hpp"

namespace zt::engine {

class QueuedClip {
 public:
  explicit QueuedClip(Device device);

  // Queues the sum of squares of grads, the factor clip_coefficient(norm, max_norm) / denominator
  // (the norm being sqrt(sum) / denominator) and the sum's copy to the host. Returns the factor,
  // an f32 (1) on the device, for StepTarget::queued_scale; it is rewritten by the next queue().
  const Tensor& queue(const Tensor& grads, double max_norm, double denominator, int64_t step);
  bool pending() const { return readback_.pending(); }
  // The norm of the last queue(): sqrt(sum) / denominator. Waits for the sum (not the update).
  double take_norm();

 private:
  Tensor sum_of_squares_;  // f64 (1) on the device
  Tensor scale_;           // f32 (1) on the device
  QueuedReadback readback_;
  double denominator_ = 1;
  int64_t step_ = 0;
};

}  // namespace zt::engine
