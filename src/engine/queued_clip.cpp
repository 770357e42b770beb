#include "queued_clip.hpp"

#include <cmath>

#include "zt/kernels/ops.hpp"

namespace zt::engine {

QueuedClip::QueuedClip(Device device)
    : sum_of_squares_(Tensor::zeros({1}, DType::f64, device)), scale_(Tensor::zeros({1}, DType::f32, device)) {}

const Tensor& QueuedClip::queue(const Tensor& grads, double max_norm, double denominator, int64_t step) {
  ZT_CHECK(!pending(), "QueuedClip: the norm of step ", step_, " was not taken before step ", step, " queued its own");
  ops::sum_squares_into(sum_of_squares_, grads);
  ops::clip_scale(scale_, sum_of_squares_, max_norm, denominator);
  readback_.queue(sum_of_squares_);
  denominator_ = denominator;
  step_ = step;
  return scale_;
}

double QueuedClip::take_norm() {
  const double sum = readback_.wait().data<double>()[0];
  ZT_CHECK(std::isfinite(sum), "gradients overflowed at step ", step_,
           " (norm is not finite) without fp16 loss scaling; that step's update was not applied");
  return std::sqrt(sum) / denominator_;
}

}  // namespace zt::engine
