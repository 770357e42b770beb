// The pieces of a training step that the config chooses: the optimizer, the learning-rate
// schedule and the loss scale.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>

#include "zt/engine/config.hpp"
#include "zt/optim/optimizer.hpp"

namespace zt::engine {

class LearningRate {
 public:
  virtual ~LearningRate() = default;
  virtual double current() const = 0;  // for the step about to be taken
  virtual void step() = 0;             // after an applied optimizer step
  // OneCycle's momentum cycling: the betas for the step about to be taken, when it sets them.
  virtual std::optional<std::pair<double, double>> betas() const { return std::nullopt; }
  // The schedule's state for checkpoints (null without a schedule).
  virtual nlohmann::json state_dict() const = 0;
  virtual void load_state_dict(const nlohmann::json& state) = 0;
};

class LossScale {
 public:
  virtual ~LossScale() = default;
  virtual double scale() const = 0;
  virtual bool dynamic() const = 0;
  // After each boundary: overflow says whether the step was skipped.
  virtual void update(bool overflow, int64_t global_step) = 0;
  virtual nlohmann::json state_dict() const = 0;
  virtual void load_state_dict(const nlohmann::json& state) = 0;
};

struct TrainingParts {
  std::unique_ptr<optim::Optimizer> optimizer;
  std::unique_ptr<LearningRate> learning_rate;
  std::unique_ptr<LossScale> loss_scale;
};

TrainingParts make_training_parts(const Config& config);

}  // namespace zt::engine
