#include "zt/optim/optimizer.hpp"

#include "zt/kernels/ops.hpp"

namespace zt::optim {

const std::map<std::string, Tensor>& Optimizer::state(int64_t id) const {
  auto it = state_.find(id);
  ZT_CHECK(it != state_.end(), name(), ": no state for buffer ", id, " (it has not been stepped)");
  return it->second;
}

size_t Optimizer::state_bytes() const {
  size_t n = 0;
  for (const auto& [id, tensors] : state_)
    for (const auto& [name, t] : tensors) n += t.nbytes();
  return n;
}

void Optimizer::check_host_target(const StepTarget& t) const {
  ZT_CHECK(t.param.defined() && t.grad.defined(), name(), ": buffer ", t.id, " needs both a parameter and a gradient");
  const DType g = t.grad.dtype();
  ZT_CHECK(t.param.dtype() == DType::f32 && (g == DType::f32 || g == DType::bf16 || g == DType::f16), name(),
           ": buffer ", t.id, " must be f32 (its gradient f32, bf16 or f16), got ", t.param.describe(),
           " and gradient ", t.grad.describe());
  ZT_CHECK(t.param.device().is_cpu() && t.grad.device().is_cpu(), name(), ": buffer ", t.id,
           " is on ", t.param.device().name(), "; this optimizer steps host buffers only (offload the optimizer "
           "to the CPU, or use Adam/AdamW)");
  ZT_CHECK(t.param.numel() == t.grad.numel(), name(), ": buffer ", t.id, " has ", t.param.numel(),
           " parameters but ", t.grad.numel(), " gradients");
  ZT_CHECK(!t.queued_scale.defined(), name(), ": buffer ", t.id,
           " comes with a queued gradient scale, which only Adam/AdamW read");
}

void Optimizer::finish_target(const StepTarget& t, bool param_out_written) const {
  if (t.param_out.defined() && !param_out_written) {
    ZT_CHECK(t.param_out.numel() == t.param.numel() && t.param_out.device().is_cpu(), name(), ": buffer ", t.id,
             "'s parameter copy is ", t.param_out.describe(), ", expected ", t.param.numel(), " host elements");
    ops::cast(t.param_out, t.param);
  }
  if (t.done) t.done();
}

bool Optimizer::has_states(int64_t id) const {
  auto it = state_.find(id);
  return it != state_.end() && !it->second.empty();
}

void Optimizer::load_state(int64_t id, const std::string& key, Tensor value) {
  ZT_CHECK(value.defined() && value.dtype() == DType::f32, name(), ": state '", key, "' of buffer ", id,
           " must be an f32 tensor, got ", value.defined() ? value.describe() : std::string("none"));
  state_[id][key] = std::move(value);
}

bool Optimizer::has_state(const StepTarget& t, const std::string& key) const {
  if (t.states) return t.states->tensors.count(key) && t.states->tensors.at(key).defined();
  auto it = state_.find(t.id);
  return it != state_.end() && it->second.count(key) && it->second.at(key).defined();
}

const Tensor& Optimizer::state_for(const StepTarget& t, const std::string& key) {
  Tensor* slot = nullptr;
  if (t.states) {
    slot = &t.states->tensors[key];
    if (!slot->defined()) {
      ZT_CHECK(bool(t.states->create), name(), ": buffer ", t.id, " has no state '", key, "' and no way to make one");
      *slot = t.states->create(key);
      ZT_CHECK(slot->defined() && slot->dtype() == DType::f32 && slot->device() == t.param.device(), name(),
               ": the state '", key, "' made for buffer ", t.id, " is ",
               slot->defined() ? slot->describe() : std::string("none"), ", expected f32 on ", t.param.device().name());
    }
  } else {
    slot = &state_[t.id][key];
    if (!slot->defined()) *slot = Tensor::zeros(t.param.shape(), DType::f32, t.param.device());
  }
  ZT_CHECK(slot->numel() == t.param.numel(), name(), ": buffer ", t.id, " changed size from ", slot->numel(), " to ",
           t.param.numel(), " between steps (state '", key, "')");
  return *slot;
}

}  // namespace zt::optim
