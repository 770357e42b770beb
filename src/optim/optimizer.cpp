#include "zt/optim/optimizer.hpp"

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

const Tensor& Optimizer::state_for(const StepTarget& t, const std::string& key) {
  auto& slot = state_[t.id][key];
  if (!slot.defined()) slot = Tensor::zeros(t.param.shape(), DType::f32, t.param.device());
  ZT_CHECK(slot.numel() == t.param.numel(), name(), ": buffer ", t.id, " changed size from ", slot.numel(), " to ",
           t.param.numel(), " between steps");
  return slot;
}

}  // namespace zt::optim
