// OneCycle and LRRangeTest (formulas in zt/optim/lr_scheduler.hpp).
#include <cmath>

#include "zt/core/error.hpp"
#include "zt/optim/lr_scheduler.hpp"

namespace zt::optim {

OneCycle::OneCycle(const OneCycleConfig& c) : LRScheduler(c.last_batch_iteration), config_(c) {
  ZT_CHECK(c.cycle_first_step_size > 0, "OneCycle: cycle_first_step_size must be positive, got ",
           c.cycle_first_step_size);
  const double first = double(c.cycle_first_step_size);
  const double second = c.cycle_second_step_size ? double(*c.cycle_second_step_size) : first;
  total_size_ = first + second;
  step_ratio_ = first / total_size_;
  skip_lr_decay_ = c.decay_step_size == 0 || c.decay_lr_rate == 0;
  skip_mom_decay_ = c.decay_step_size == 0 || c.decay_mom_rate == 0;
}

double OneCycle::scale_factor(int64_t i) const {
  const double batch = double(i + 1);
  const double cycle = std::floor(1.0 + batch / total_size_);
  const double x = 1.0 + batch / total_size_ - cycle;
  return x <= step_ratio_ ? x / step_ratio_ : (x - 1.0) / (step_ratio_ - 1.0);
}

double OneCycle::lr_at(int64_t i) const {
  const OneCycleConfig& c = config_;
  if (double(i) < total_size_) return c.cycle_min_lr + (c.cycle_max_lr - c.cycle_min_lr) * scale_factor(i);
  if (skip_lr_decay_) return c.cycle_min_lr;
  const double interval = double(i - int64_t(total_size_) + 1) / double(c.decay_step_size);
  return c.cycle_min_lr / (1.0 + c.decay_lr_rate * interval);
}

std::optional<std::pair<double, double>> OneCycle::betas_at(int64_t i) const {
  const OneCycleConfig& c = config_;
  if (!c.cycle_momentum) return std::nullopt;
  constexpr double beta2 = 0.99;  // DeepSpeed pins the second beta while cycling the first
  if (i < 0) return std::pair{c.cycle_min_mom, beta2};
  if (double(i) < total_size_)
    return std::pair{c.cycle_max_mom - (c.cycle_max_mom - c.cycle_min_mom) * scale_factor(i), beta2};
  if (skip_mom_decay_) return std::pair{c.cycle_max_mom, beta2};
  const double interval = double(i - int64_t(total_size_) + 1) / double(c.decay_step_size);
  return std::pair{c.cycle_max_mom * (1.0 + c.decay_mom_rate * interval), beta2};
}

std::optional<std::pair<double, double>> OneCycle::betas() const { return betas_at(last_step_); }

LRRangeTest::LRRangeTest(const LRRangeTestConfig& c) : LRScheduler(c.last_batch_iteration), config_(c) {
  ZT_CHECK(c.lr_range_test_step_size > 0, "LRRangeTest: lr_range_test_step_size must be positive, got ",
           c.lr_range_test_step_size);
}

double LRRangeTest::lr_at(int64_t i) const {
  double interval = double(i + 1) / double(config_.lr_range_test_step_size);
  if (config_.lr_range_test_staircase) interval = std::floor(interval);
  return config_.lr_range_test_min_lr * (1.0 + config_.lr_range_test_step_rate * interval);
}

}  // namespace zt::optim
