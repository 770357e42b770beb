// The loss scale for fp16 training, with DeepSpeed's DynamicLossScaler semantics
// (deepspeed/runtime/fp16/loss_scaler.py). Each optimizer step reports whether the gradients
// overflowed (any inf/NaN, on any rank); update() says whether to take the step.
//
// Dynamic: the scale starts at 2^initial_scale_power. An overflow skips the step and, once the
// hysteresis is used up (hysteresis overflows in a row count as one), divides the scale by
// scale_factor, never below min_loss_scale; an overflow with the scale already at min_loss_scale is
// an error, as in DeepSpeed ("Current loss scale already at minimum"). After scale_window steps
// with no overflow the scale is multiplied by scale_factor and the hysteresis is restored; with
// consecutive_hysteresis every clean step restores it. Static (loss_scale > 0): the scale never
// changes; an overflow still skips the step.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>

namespace zt::engine {
struct Fp16Config;
}

namespace zt::optim {

struct LossScalerConfig {
  double static_scale = 0;             // > 0: a static scale; 0: dynamic
  double initial_scale = 65536.0;      // 2^initial_scale_power
  int64_t scale_window = 1000;         // loss_scale_window
  int64_t hysteresis = 2;              // DeepSpeed's delayed_shift
  bool consecutive_hysteresis = false;
  double min_scale = 1.0;              // min_loss_scale
  double scale_factor = 2.0;
  bool error_at_min_scale = true;      // DeepSpeed's raise_error_at_min_scale
};

class LossScaler {
 public:
  explicit LossScaler(const LossScalerConfig& config = {});
  // From DeepSpeed's "fp16" section: dynamic unless loss_scale > 0. (DeepSpeed's ZeRO path builds
  // its scaler with class defaults, 2^32 and no hysteresis, when the section names none of the
  // dynamic keys; here the documented defaults apply either way: 2^16, hysteresis 2.)
  static LossScaler from_fp16(const engine::Fp16Config& fp16);
  // A static scale of 1, for bf16 and fp32 training (overflow still skips the step).
  static LossScaler unit() { return LossScaler(LossScalerConfig{1.0}); }

  double scale() const { return scale_; }
  bool dynamic() const { return config_.static_scale <= 0; }
  // Records this step's overflow check and adjusts the scale; true when the optimizer should
  // step, false when the step is skipped.
  bool update(bool overflow);

  int64_t iteration() const { return iteration_; }          // update() calls so far
  int64_t skipped_steps() const { return skipped_steps_; }  // overflowed ones
  int64_t hysteresis_left() const { return hysteresis_left_; }
  const LossScalerConfig& config() const { return config_; }

  // {"cur_scale", "cur_iter", "last_overflow_iter", "cur_hysteresis", "skipped_steps"}.
  nlohmann::json state_dict() const;
  void load_state_dict(const nlohmann::json& state);

 private:
  LossScalerConfig config_;
  double scale_;
  int64_t iteration_ = 0, last_overflow_iteration_ = -1, hysteresis_left_, skipped_steps_ = 0;
};

}  // namespace zt::optim
