// The pieces of a training step that the config chooses: the optimizer, the learning-rate
// schedule and the loss scale.
#pragma once

#include <memory>

#include "zt/engine/config.hpp"
#include "zt/optim/optimizer.hpp"

namespace zt::engine {

class LearningRate {
 public:
  virtual ~LearningRate() = default;
  virtual double current() const = 0;  // for the step about to be taken
  virtual void step() = 0;             // after an applied optimizer step
};

class LossScale {
 public:
  virtual ~LossScale() = default;
  virtual double scale() const = 0;
  virtual bool dynamic() const = 0;
  // After each boundary: overflow says whether the step was skipped.
  virtual void update(bool overflow, int64_t global_step) = 0;
};

struct TrainingParts {
  std::unique_ptr<optim::Optimizer> optimizer;
  std::unique_ptr<LearningRate> learning_rate;
  std::unique_ptr<LossScale> loss_scale;
};

TrainingParts make_training_parts(const Config& config);

}  // namespace zt::engine
