// Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"), with DeepSpeed's
// defaults and arithmetic: c = beta1 m + (1 - beta1) g; p = p (1 - lr wd) - lr sign(c);
// m = beta2 m + (1 - beta2) g. One state tensor ("exp_avg"). A c of exactly zero moves nothing
// (torch.sign); DeepSpeed's kernels move such an element by lr.
#pragma once

#include "zt/optim/optimizer.hpp"

namespace zt::optim {

struct LionConfig {
  double beta1 = 0.9, beta2 = 0.999, weight_decay = 0.0;
};

class Lion : public Optimizer {
 public:
  explicit Lion(const LionConfig& config) : config_(config) {}
  std::string name() const override { return "Lion"; }
  void step(const std::vector<StepTarget>& targets, double lr, double grad_scale) override;
  std::vector<std::string> state_names() const override { return {"exp_avg"}; }
  bool set_betas(double beta1, double beta2) override {
    config_.beta1 = beta1;
    config_.beta2 = beta2;
    return true;
  }
  const LionConfig& config() const { return config_; }

 private:
  LionConfig config_;
};

}  // namespace zt::optim
