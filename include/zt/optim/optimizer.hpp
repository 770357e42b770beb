// Optimizers step flat f32 buffers: the whole model's parameters in one buffer on one process,
// or this rank's shard under ZeRO. Each buffer carries a stable id, so that the optimizer's
// state (moments) is found again at the next step and can be saved and restored.
//
// Offload (the engine's optimizer offload and NVMe swapper) steps a shard as many targets (tiles
// of a few MB, sub-groups swapped in from disk) and needs three things the plain path does not:
// the gradient in its storage dtype (bf16/f16, read as its f32 value), a copy of the updated
// parameters in the storage dtype (param_out, to send up), and states that the caller owns and
// moves (ExternalStates). done() tells the caller when a target is final, so that it can send the
// target's parameters up, or write its states out, while the next target steps.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "zt/core/tensor.hpp"

namespace zt::optim {

// Elements [offset, offset + numel) of a target that an optimizer treats as one tensor (LAMB's
// trust ratio is per tensor). key names that tensor across ranks when ZeRO splits it between
// shards, so that its norms can be summed over the pieces (-1: not split, or unknown).
struct Segment {
  int64_t offset = 0, numel = 0;
  int64_t key = -1;
};

// A target's optimizer states kept by the caller instead of the optimizer: for each state name,
// an f32 tensor of the target's length on the target's device. A state missing from `tensors` is
// made by create(name) (zeros, or a zeroed buffer the caller owns) and added here; the optimizer
// keeps no reference to any of them after the step.
struct ExternalStates {
  std::map<std::string, Tensor> tensors;
  std::function<Tensor(const std::string& name)> create;
};

struct StepTarget {
  int64_t id = 0;   // stable across steps
  Tensor param;     // f32 (n), updated in place
  Tensor grad;      // (n): f32, bf16 or f16 (AdamW on any device; the other optimizers on the host)
  std::vector<Segment> segments = {};  // empty: the whole buffer is one tensor
  Tensor param_out = {};               // optional (n) f32/bf16/f16 on param's device: the updated param, rounded to its dtype
  ExternalStates* states = nullptr;    // optional: the caller's states for this target (else the optimizer's, by id)
  // optional, where takes_queued_scale(): an f32 (1) on param's device that also multiplies the
  // gradient, read when the update runs (the clip factor computed on the GPU, with no host wait);
  // where it is not finite the update leaves the target as it was.
  Tensor queued_scale = {};
  std::function<void()> done = {};     // optional: called once the target is final (param, param_out, states)
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  virtual std::string name() const = 0;
  // One update of every target with learning rate lr; grad_scale multiplies each gradient
  // first (1/loss-scale times the clipping coefficient). Each target's done() is called exactly
  // once, in target order, when that target is final.
  virtual void step(const std::vector<StepTarget>& targets, double lr, double grad_scale) = 0;
  // The state tensors this optimizer keeps per element, in the order it creates them ("exp_avg",
  // "exp_avg_sq"); empty when it keeps none (SGD without momentum).
  virtual std::vector<std::string> state_names() const = 0;
  // True when step() finishes each target (up to its done()) before it reads the next one, so a
  // caller may bring target i + 1's data in from done() of target i (the NVMe swapper). LAMB's trust
  // ratio needs every target's norms before any update, so it reads all targets first.
  virtual bool streams_targets() const { return true; }
  // True when step() honours StepTarget::queued_scale.
  virtual bool takes_queued_scale() const { return false; }
  int64_t step_count() const { return step_count_; }
  // Sets (beta1, beta2), for schedules that cycle momentum (OneCycle); false when the optimizer
  // has no betas (SGD), in which case nothing changes.
  virtual bool set_betas(double beta1, double beta2) { return false; }
  // The named state tensors of one target ("exp_avg", ...), for checkpoints and memory reports.
  const std::map<std::string, Tensor>& state(int64_t id) const;
  size_t state_bytes() const;  // the states the optimizer holds itself (not ExternalStates)
  // Checkpoints: whether target id has state yet; restoring a state tensor (f32, the target's
  // length, on the target's device) and the step count that bias corrections use.
  bool has_states(int64_t id) const;
  void load_state(int64_t id, const std::string& name, Tensor value);
  void set_step_count(int64_t steps) { step_count_ = steps; }

 protected:
  // The state tensor `name` of target t (from t.states when given), created as zeros like t.param
  // on first use.
  const Tensor& state_for(const StepTarget& t, const std::string& name);
  bool has_state(const StepTarget& t, const std::string& name) const;
  // Checks that t's param is an f32 host buffer and its grad an f32, bf16 or f16 host buffer of the
  // same length (the CPU loops' contract), with no queued_scale.
  void check_host_target(const StepTarget& t) const;
  // After target t is updated: writes t.param_out from t.param unless the optimizer's own pass did
  // (param_out_written), then calls t.done.
  void finish_target(const StepTarget& t, bool param_out_written = false) const;
  int64_t step_count_ = 0;

 private:
  std::map<int64_t, std::map<std::string, Tensor>> state_;
};

// Calls f(load) with load(i) returning element i of t.grad as a float, one instantiation per
// gradient dtype (f32, bf16, f16), so the caller's loop is typed.
template <class F>
void visit_grad(const StepTarget& t, F&& f) {
  const void* raw = t.grad.raw();
  switch (t.grad.dtype()) {
    case DType::bf16: {
      const uint16_t* g = static_cast<const uint16_t*>(raw);
      f([g](int64_t i) { return bf16_to_float(g[i]); });
      return;
    }
    case DType::f16: {
      const uint16_t* g = static_cast<const uint16_t*>(raw);
      f([g](int64_t i) { return f16_to_float(g[i]); });
      return;
    }
    default: {
      const float* g = t.grad.data<float>();
      f([g](int64_t i) { return g[i]; });
      return;
    }
  }
}

}  // namespace zt::optim
