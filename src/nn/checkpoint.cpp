#include "zt/nn/checkpoint.hpp"

namespace zt::nn {

Checkpoint::Checkpoint(std::shared_ptr<Module> body, CheckpointOptions options)
    : body_(std::move(body)), options_(options) {
  ZT_CHECK(body_ != nullptr, "Checkpoint: the body is null");
  register_transparent_module(body_);
}

Tensor Checkpoint::save_input(const Tensor& x) {
  if (!options_.cpu_checkpointing || x.device().is_cpu()) return x;
  const size_t n = x.nbytes();
  if (!host_buffer_ || host_buffer_->nbytes() != n) host_buffer_ = Storage::allocate(n, Device::cpu(), /*pinned=*/true);
  Tensor host(host_buffer_, 0, x.shape(), x.dtype());
  // Queued behind the kernels that wrote x; x's device memory is freed in stream order after it.
  // The host never reads the copy: the copy back up is queued on the same stream.
  host.copy_from_async(x);
  return host;
}

Tensor Checkpoint::restore_input() const {
  if (saved_.device() == input_device_) return saved_;
  Tensor x = Tensor::empty(saved_.shape(), saved_.dtype(), input_device_);
  x.copy_from_async(saved_);
  return x;
}

Tensor Checkpoint::forward_impl(const Tensor& x) {
  Tensor y = body_->forward(x);
  body_->release_saved();
  input_device_ = x.device();
  saved_ = save_input(x);
  return y;
}

Tensor Checkpoint::backward_impl(const Tensor& dy) {
  ZT_CHECK(saved_.defined(), "Checkpoint around ", body_->type_name(),
           ": backward without a forward (or after release_saved)");
  const Tensor x = restore_input();
  saved_ = Tensor();
  {
    RecomputeScope recompute;
    body_->forward(x);  // rebuilds what the body's backward reads; the output is the first forward's
  }
  return body_->backward(dy);
}

void Checkpoint::drop_saved() { saved_ = Tensor(); }

}  // namespace zt::nn
