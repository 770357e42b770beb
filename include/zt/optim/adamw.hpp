// Adam and AdamW with PyTorch's semantics: decoupled weight decay (AdamW) or L2 added to the
// gradient (Adam, adam_w_mode = false), bias correction.
#pragma once

#include "zt/optim/optimizer.hpp"

namespace zt::optim {

struct AdamWConfig {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.01;
  bool adam_w_mode = true;
};

class AdamW : public Optimizer {
 public:
  explicit AdamW(const AdamWConfig& config) : config_(config) {}
  std::string name() const override { return config_.adam_w_mode ? "AdamW" : "Adam"; }
  void step(const std::vector<StepTarget>& targets, double lr, double grad_scale) override;
  std::vector<std::string> state_names() const override { return {"exp_avg", "exp_avg_sq"}; }
  // Adam's L2 form adds the decay to the scaled gradient before the update: that sum would need
  // the scale on the host.
  bool takes_queued_scale() const override { return config_.adam_w_mode || config_.weight_decay == 0; }
  const AdamWConfig& config() const { return config_; }
  bool set_betas(double beta1, double beta2) override {
    config_.beta1 = beta1;
    config_.beta2 = beta2;
    return true;
  }

 private:
  AdamWConfig config_;
};

}  // namespace zt::optim
