#include "engine_parts.hpp"

#include "zt/optim/factory.hpp"
#include "zt/optim/loss_scaler.hpp"
#include "zt/optim/lr_scheduler.hpp"

namespace zt::engine {

namespace {

// The optimizer's own learning rate, or the schedule's (DeepSpeed steps the schedule after
// each applied optimizer step).
class ScheduledRate : public LearningRate {
 public:
  ScheduledRate(double base_lr, std::unique_ptr<optim::LRScheduler> schedule)
      : base_lr_(base_lr), schedule_(std::move(schedule)) {}
  double current() const override { return schedule_ ? schedule_->lr() : base_lr_; }
  void step() override {
    if (schedule_) schedule_->step();
  }
  std::optional<std::pair<double, double>> betas() const override {
    return schedule_ ? schedule_->betas() : std::nullopt;
  }
  nlohmann::json state_dict() const override { return schedule_ ? schedule_->state_dict() : nlohmann::json(); }
  void load_state_dict(const nlohmann::json& state) override {
    if (schedule_ && !state.is_null()) schedule_->load_state_dict(state);
  }

 private:
  double base_lr_;
  std::unique_ptr<optim::LRScheduler> schedule_;
};

class ScalerScale : public LossScale {
 public:
  explicit ScalerScale(optim::LossScaler scaler) : scaler_(std::move(scaler)) {}
  double scale() const override { return scaler_.scale(); }
  bool dynamic() const override { return scaler_.dynamic(); }
  void update(bool overflow, int64_t) override { scaler_.update(overflow); }
  nlohmann::json state_dict() const override { return scaler_.state_dict(); }
  void load_state_dict(const nlohmann::json& state) override { scaler_.load_state_dict(state); }

 private:
  optim::LossScaler scaler_;
};

}  // namespace

TrainingParts make_training_parts(const Config& config) {
  TrainingParts parts;
  optim::OptimizerBuild built = optim::make_optimizer(config.optimizer.value_or(OptimizerConfig{}), "optimizer");
  parts.optimizer = std::move(built.optimizer);
  std::unique_ptr<optim::LRScheduler> schedule;
  if (!config.scheduler.type.empty()) schedule = optim::make_scheduler(config.scheduler, built.lr, "scheduler");
  parts.learning_rate = std::make_unique<ScheduledRate>(built.lr, std::move(schedule));
  parts.loss_scale = std::make_unique<ScalerScale>(config.fp16.enabled ? optim::LossScaler::from_fp16(config.fp16)
                                                                       : optim::LossScaler::unit());
  return parts;
}

}  // namespace zt::engine
