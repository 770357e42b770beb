// Learning-rate schedules with DeepSpeed's formulas, defaults and step convention
// (deepspeed/runtime/lr_schedules.py). A schedule counts optimizer steps in last_step(), -1 before
// the first: lr() is the rate for the next optimizer step, and step() is called after each step the
// optimizer took (DeepSpeed does not step the schedule when fp16 overflow skipped the update). So
// the first update runs at lr_at(-1): warmup_min_lr for WarmupLR/WarmupDecayLR, 0 for
// WarmupCosineLR, cycle_min_lr for OneCycle, lr_range_test_min_lr for LRRangeTest, as in DeepSpeed.
//
// Letters: i = last_step(), W = max(2, warmup_num_steps), T = total_num_steps.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace zt::engine {
struct SchedulerConfig;
}

namespace zt::optim {

class LRScheduler {
 public:
  virtual ~LRScheduler() = default;
  virtual std::string name() const = 0;
  // The rate at a given last_batch_iteration (pure; lr() is lr_at(last_step())).
  virtual double lr_at(int64_t last_batch_iteration) const = 0;
  // (beta1, beta2) to set on the optimizer for the next step when the schedule cycles momentum
  // (OneCycle with cycle_momentum), else nothing.
  virtual std::optional<std::pair<double, double>> betas() const { return std::nullopt; }

  double lr() const { return lr_at(last_step_); }
  void step() { ++last_step_; }
  int64_t last_step() const { return last_step_; }

  // DeepSpeed's scheduler state: {"last_batch_iteration": i}.
  nlohmann::json state_dict() const;
  void load_state_dict(const nlohmann::json& state);

 protected:
  explicit LRScheduler(int64_t last_batch_iteration) : last_step_(last_batch_iteration) {}
  int64_t last_step_ = -1;
};

enum class WarmupType { log, linear };

// Warmup from warmup_min_lr to warmup_max_lr over W steps, then constant:
//   lr = min + (max - min) * gamma,  gamma = log(i + 1) / log(W) (log) or i / W (linear) for i < W, else 1.
struct WarmupLRConfig {
  double warmup_min_lr = 0.0;
  std::optional<double> warmup_max_lr;  // default: the optimizer's lr
  int64_t warmup_num_steps = 1000;
  WarmupType warmup_type = WarmupType::log;
  int64_t last_batch_iteration = -1;
};

class WarmupLR : public LRScheduler {
 public:
  WarmupLR(const WarmupLRConfig& config, double base_lr);
  std::string name() const override { return "WarmupLR"; }
  double lr_at(int64_t i) const override;

 protected:
  virtual double gamma(int64_t i) const;
  double warmup_gamma(int64_t i) const;  // the part for i < W
  double min_lr_, max_lr_;
  int64_t warmup_steps_;  // W
  WarmupType type_;
};

// WarmupLR, then linear decay to 0 at T: gamma = max(0, (T - i) / max(1, T - W)) for i >= W.
// warmup_max_lr defaults to 0.001 here (DeepSpeed's WarmupDecayLR keeps the old default).
struct WarmupDecayLRConfig {
  WarmupLRConfig warmup;
  int64_t total_num_steps = 0;  // required
};

class WarmupDecayLR : public WarmupLR {
 public:
  explicit WarmupDecayLR(const WarmupDecayLRConfig& config);
  std::string name() const override { return "WarmupDecayLR"; }

 protected:
  double gamma(int64_t i) const override;
  int64_t total_steps_;
};

// Ratios of the optimizer's lr: warmup from warmup_min_ratio to 1 over W steps (log or linear as
// above), then cosine to cos_min_ratio at T:
//   ratio = max(0, cos_min + (1 - cos_min) * (1 + cos(pi * (i - W + 1) / (T - W))) / 2).
// As in DeepSpeed there is no clamp after T (the cosine rises again).
struct WarmupCosineLRConfig {
  int64_t total_num_steps = 0;  // required, > W
  double warmup_min_ratio = 0.0;
  int64_t warmup_num_steps = 1000;
  double cos_min_ratio = 0.0001;
  WarmupType warmup_type = WarmupType::log;
  int64_t last_batch_iteration = -1;
};

class WarmupCosineLR : public LRScheduler {
 public:
  WarmupCosineLR(const WarmupCosineLRConfig& config, double base_lr);
  std::string name() const override { return "WarmupCosineLR"; }
  double lr_at(int64_t i) const override;
  double ratio_at(int64_t i) const;

 private:
  WarmupCosineLRConfig config_;
  int64_t warmup_steps_;
  double base_lr_;
};

// One triangular cycle of cycle_first_step_size steps up and cycle_second_step_size steps down
// (S = their sum), then decay:
//   for i < S: x = (i + 1) / S - floor((i + 1) / S), scale = x / r if x <= r else (x - 1) / (r - 1),
//              r = first / S; lr = min + (max - min) * scale; momentum = max_mom - (max_mom - min_mom) * scale
//   after:     lr = min / (1 + decay_lr_rate * (i - S + 1) / decay_step_size) (min when either is 0);
//              momentum = max_mom * (1 + decay_mom_rate * (i - S + 1) / decay_step_size) (max_mom when 0)
// With cycle_momentum the betas are (momentum, 0.99), and (cycle_min_mom, 0.99) before the first
// step, as DeepSpeed sets them. The stair counts are accepted and, as in DeepSpeed, unused.
struct OneCycleConfig {
  double cycle_min_lr = 0, cycle_max_lr = 0;  // required
  double decay_lr_rate = 0.0;
  int64_t cycle_first_step_size = 2000;
  std::optional<int64_t> cycle_second_step_size;  // default: cycle_first_step_size
  int64_t cycle_first_stair_count = 0;
  std::optional<int64_t> cycle_second_stair_count;
  int64_t decay_step_size = 0;
  bool cycle_momentum = true;
  double cycle_min_mom = 0.8, cycle_max_mom = 0.9, decay_mom_rate = 0.0;
  int64_t last_batch_iteration = -1;
};

class OneCycle : public LRScheduler {
 public:
  explicit OneCycle(const OneCycleConfig& config);
  std::string name() const override { return "OneCycle"; }
  double lr_at(int64_t i) const override;
  std::optional<std::pair<double, double>> betas() const override;
  std::optional<std::pair<double, double>> betas_at(int64_t i) const;

 private:
  double scale_factor(int64_t i) const;
  OneCycleConfig config_;
  double total_size_, step_ratio_;
  bool skip_lr_decay_, skip_mom_decay_;
};

// lr = lr_range_test_min_lr * (1 + lr_range_test_step_rate * k), k = (i + 1) / step_size, floored
// when lr_range_test_staircase.
struct LRRangeTestConfig {
  double lr_range_test_min_lr = 1e-3;
  int64_t lr_range_test_step_size = 2000;
  double lr_range_test_step_rate = 1.0;
  bool lr_range_test_staircase = false;
  int64_t last_batch_iteration = -1;
};

class LRRangeTest : public LRScheduler {
 public:
  explicit LRRangeTest(const LRRangeTestConfig& config);
  std::string name() const override { return "LRRangeTest"; }
  double lr_at(int64_t i) const override;

 private:
  LRRangeTestConfig config_;
};

// A schedule by DeepSpeed's name (WarmupLR, WarmupDecayLR, WarmupCosineLR, OneCycle, LRRangeTest;
// case ignored) and its "params", with base_lr the optimizer's lr. An unknown or wrongly typed
// parameter is an error naming scheduler.params.<key>; a required one missing is an error.
std::unique_ptr<LRScheduler> make_scheduler(const std::string& type, const nlohmann::json& params, double base_lr,
                                            const std::string& source = "scheduler config");
// nullptr when config.type is empty (no schedule: the optimizer's lr throughout).
std::unique_ptr<LRScheduler> make_scheduler(const engine::SchedulerConfig& config, double base_lr,
                                            const std::string& source = "scheduler config");
std::vector<std::string> scheduler_types();

}  // namespace zt::optim
