#include "engine_parts.hpp"

#include "zt/optim/adamw.hpp"

namespace zt::engine {

namespace {

class ConstantRate : public LearningRate {
 public:
  explicit ConstantRate(double lr) : lr_(lr) {}
  double current() const override { return lr_; }
  void step() override {}

 private:
  double lr_;
};

class StaticScale : public LossScale {
 public:
  explicit StaticScale(double scale) : scale_(scale) {}
  double scale() const override { return scale_; }
  bool dynamic() const override { return false; }
  void update(bool, int64_t) override {}

 private:
  double scale_;
};

double param_or(const nlohmann::json& params, const char* key, double fallback) {
  return params.contains(key) ? params[key].get<double>() : fallback;
}

}  // namespace

TrainingParts make_training_parts(const Config& config) {
  TrainingParts parts;
  const OptimizerConfig opt = config.optimizer.value_or(OptimizerConfig{});
  optim::AdamWConfig adam;
  adam.eps = param_or(opt.params, "eps", 1e-8);
  adam.weight_decay = param_or(opt.params, "weight_decay", 0.01);
  if (opt.params.contains("betas")) {
    adam.beta1 = opt.params["betas"][0].get<double>();
    adam.beta2 = opt.params["betas"][1].get<double>();
  }
  adam.adam_w_mode = opt.params.value("adam_w_mode", true);
  parts.optimizer = std::make_unique<optim::AdamW>(adam);
  parts.learning_rate = std::make_unique<ConstantRate>(param_or(opt.params, "lr", 1e-3));
  parts.loss_scale = std::make_unique<StaticScale>(config.fp16.enabled && config.fp16.loss_scale > 0 ? config.fp16.loss_scale : 1.0);
  return parts;
}

}  // namespace zt::engine
