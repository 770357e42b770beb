// Optimizers step flat f32 buffers: the whole model's parameters in one buffer on one process,
// or this rank's shard under ZeRO. Each buffer carries a stable id, so that the optimizer's
// state (moments) is found again at the next step and can be saved and restored.
#pragma once

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

struct StepTarget {
  int64_t id = 0;   // stable across steps
  Tensor param;     // f32 (n), updated in place
  Tensor grad;      // f32 (n)
  std::vector<Segment> segments = {};  // empty: the whole buffer is one tensor
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  virtual std::string name() const = 0;
  // One update of every target with learning rate lr; grad_scale multiplies each gradient
  // first (1/loss-scale times the clipping coefficient).
  virtual void step(const std::vector<StepTarget>& targets, double lr, double grad_scale) = 0;
  int64_t step_count() const { return step_count_; }
  // Sets (beta1, beta2), for schedules that cycle momentum (OneCycle); false when the optimizer
  // has no betas (SGD), in which case nothing changes.
  virtual bool set_betas(double beta1, double beta2) { return false; }
  // The named state tensors of one target ("exp_avg", ...), for checkpoints and memory reports.
  const std::map<std::string, Tensor>& state(int64_t id) const;
  size_t state_bytes() const;
  // Checkpoints: whether target id has state yet; restoring a state tensor (f32, the target's
  // length, on the target's device) and the step count that bias corrections use.
  bool has_states(int64_t id) const;
  void load_state(int64_t id, const std::string& name, Tensor value);
  void set_step_count(int64_t steps) { step_count_ = steps; }

 protected:
  // The state tensor `name` of target t, created as zeros like t.param on first use.
  const Tensor& state_for(const StepTarget& t, const std::string& name);
  bool has_state(int64_t id, const std::string& name) const;
  // Checks that t's param and grad are f32 host buffers of one length (the CPU loops' contract).
  void check_host_target(const StepTarget& t) const;
  int64_t step_count_ = 0;

 private:
  std::map<int64_t, std::map<std::string, Tensor>> state_;
};

}  // namespace zt::optim
