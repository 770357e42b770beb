// Activation checkpointing: trades a second forward for the memory of what a body of modules
// keeps for its backward.
//
// Checkpoint's forward runs its body's forward, keeps only the body's input and has the body
// release everything else it saved (Module::release_saved). Its backward brings the input back,
// re-runs the body's forward inside a RecomputeScope (the engine's hooks run again, so stage 3
// gathers the parameters again, but no parameter use is counted twice), then runs the body's
// backward on what that forward saved. On CPU ranks the recomputation is the same arithmetic, so
// gradients are bit-equal to the body's without a Checkpoint.
//
// The body is a transparent child: its parameters keep the names they would have without the
// wrapper ("h.0.attn.c_attn.weight", not "h.0.fn.attn.c_attn.weight").
//
// The input must not be written in place between the forward and the backward (the models never
// do); with cpu_checkpointing a GPU input is a copy in host memory, so only that copy matters.
#pragma once

#include "zt/nn/module.hpp"

namespace zt::nn {

struct CheckpointOptions {
  // Keep the saved input in pinned host memory when it is on a GPU (DeepSpeed's
  // cpu_checkpointing): copied down and up on the compute stream with no host wait. An input in
  // host memory (CPU ranks) is kept by reference either way.
  bool cpu_checkpointing = false;
};

class Checkpoint : public Module {
 public:
  explicit Checkpoint(std::shared_ptr<Module> body, CheckpointOptions options = {});
  std::string type_name() const override { return "Checkpoint"; }
  const std::shared_ptr<Module>& body() const { return body_; }
  const CheckpointOptions& options() const { return options_; }
  void set_options(const CheckpointOptions& options) { options_ = options; }
  // Bytes of the saved input held now (0 outside a forward-backward pair), and where.
  size_t saved_bytes() const { return saved_.defined() ? saved_.nbytes() : 0; }
  bool saved_on_host() const { return saved_.defined() && saved_.device().is_cpu(); }

 protected:
  Tensor forward_impl(const Tensor& x) override;
  Tensor backward_impl(const Tensor& dy) override;
  void drop_saved() override;

 private:
  Tensor save_input(const Tensor& x);
  Tensor restore_input() const;

  std::shared_ptr<Module> body_;
  CheckpointOptions options_;
  Tensor saved_;                         // the body's input: x itself, or its copy in pinned host memory
  Device input_device_ = Device::cpu();  // where the input was (and where the recomputation runs)
  // The pinned host buffer of cpu_checkpointing, kept from step to step: freeing pinned memory
  // waits for the whole device, and every step needs the same size again.
  std::shared_ptr<Storage> host_buffer_;
};

}  // namespace zt::nn
