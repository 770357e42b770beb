// SGD with momentum, with torch.optim.SGD's arithmetic:
//   d = g + weight_decay p
//   momentum != 0: b = d on the first step, else b = momentum b + (1 - dampening) d;
//                  d = d + momentum b (nesterov) or d = b
//   p -= lr d
// The state ("momentum_buffer") exists only when momentum != 0.
#pragma once

#include "zt/optim/optimizer.hpp"

namespace zt::optim {

struct SgdConfig {
  double momentum = 0.0, dampening = 0.0, weight_decay = 0.0;
  bool nesterov = false;
};

class Sgd : public Optimizer {
 public:
  // nesterov needs momentum > 0 and dampening 0, as in torch (an error otherwise).
  explicit Sgd(const SgdConfig& config);
  std::string name() const override { return "SGD"; }
  void step(const std::vector<StepTarget>& targets, double lr, double grad_scale) override;
  std::vector<std::string> state_names() const override {
    return config_.momentum != 0 ? std::vector<std::string>{"momentum_buffer"} : std::vector<std::string>{};
  }
  const SgdConfig& config() const { return config_; }

 private:
  SgdConfig config_;
};

}  // namespace zt::optim
