#include "zt/optim/loss_scaler.hpp"

#include <algorithm>
#include <cmath>

#include "zt/core/error.hpp"
#include "zt/core/json_reader.hpp"
#include "zt/engine/config.hpp"

namespace zt::optim {

LossScaler::LossScaler(const LossScalerConfig& config)
    : config_(config),
      scale_(config.static_scale > 0 ? config.static_scale : config.initial_scale),
      hysteresis_left_(config.hysteresis) {
  if (dynamic()) {
    ZT_CHECK(config.initial_scale > 0 && std::isfinite(config.initial_scale),
             "loss scaler: the initial scale must be a positive number, got ", config.initial_scale);
    ZT_CHECK(config.scale_window > 0, "loss scaler: loss_scale_window must be positive, got ", config.scale_window);
    ZT_CHECK(config.hysteresis >= 1, "loss scaler: hysteresis must be at least 1, got ", config.hysteresis);
    ZT_CHECK(config.min_scale > 0, "loss scaler: min_loss_scale must be positive, got ", config.min_scale);
    ZT_CHECK(config.scale_factor > 1, "loss scaler: the scale factor must exceed 1, got ", config.scale_factor);
  }
}

LossScaler LossScaler::from_fp16(const engine::Fp16Config& fp16) {
  LossScalerConfig c;
  c.static_scale = fp16.loss_scale;
  c.initial_scale = std::ldexp(1.0, fp16.initial_scale_power);
  c.scale_window = fp16.loss_scale_window;
  c.hysteresis = fp16.hysteresis;
  c.consecutive_hysteresis = fp16.consecutive_hysteresis;
  c.min_scale = fp16.min_loss_scale;
  return LossScaler(c);
}

bool LossScaler::update(bool overflow) {
  if (!dynamic()) {
    ++iteration_;
    if (overflow) ++skipped_steps_;
    return !overflow;
  }
  if (overflow) {
    if (config_.hysteresis == 1 || hysteresis_left_ == 1) {
      if (scale_ == config_.min_scale && config_.error_at_min_scale)
        ZT_THROW("fp16: the gradients overflowed with the loss scale already at its minimum ", config_.min_scale,
                 " (fp16.min_loss_scale), after ", skipped_steps_,
                 " skipped steps; the scale cannot go lower, so training stops here as in DeepSpeed (\"Current loss "
                 "scale already at minimum\"). The model or data likely produce inf/NaN: try bf16, a lower learning "
                 "rate, gradient_clipping, or a lower min_loss_scale");
      scale_ = std::max(scale_ / config_.scale_factor, config_.min_scale);
    } else {
      --hysteresis_left_;
    }
    last_overflow_iteration_ = iteration_;
    ++skipped_steps_;
  } else {
    if (config_.consecutive_hysteresis) hysteresis_left_ = config_.hysteresis;
    if ((iteration_ - last_overflow_iteration_) % config_.scale_window == 0) {
      if (!config_.consecutive_hysteresis) hysteresis_left_ = config_.hysteresis;
      scale_ *= config_.scale_factor;
    }
  }
  ++iteration_;
  return !overflow;
}

nlohmann::json LossScaler::state_dict() const {
  return {{"cur_scale", scale_},
          {"cur_iter", iteration_},
          {"last_overflow_iter", last_overflow_iteration_},
          {"cur_hysteresis", hysteresis_left_},
          {"skipped_steps", skipped_steps_}};
}

void LossScaler::load_state_dict(const nlohmann::json& state) {
  JsonReader r(state, "loss_scaler", "saved loss-scaler state");
  scale_ = r.get_number("cur_scale", scale_, Bounds::above(0));
  iteration_ = r.get_int("cur_iter", iteration_, Bounds::at_least(0));
  last_overflow_iteration_ = r.get_int("last_overflow_iter", last_overflow_iteration_, Bounds::at_least(-1));
  hysteresis_left_ = r.get_int("cur_hysteresis", hysteresis_left_, Bounds::at_least(1));
  skipped_steps_ = r.get_int("skipped_steps", skipped_steps_, Bounds::at_least(0));
  r.finish();
}

}  // namespace zt::optim
