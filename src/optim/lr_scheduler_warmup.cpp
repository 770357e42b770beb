// WarmupLR, WarmupDecayLR and WarmupCosineLR (formulas in zt/optim/lr_scheduler.hpp).
#include <algorithm>
#include <cmath>
#include <numbers>

#include "zt/core/error.hpp"
#include "zt/optim/lr_scheduler.hpp"

namespace zt::optim {

namespace {

// The warmup fraction in [0, 1) for i < W.
double warmup_fraction(WarmupType type, int64_t i, int64_t w) {
  if (type == WarmupType::log) return std::log(double(i + 1)) / std::log(double(w));
  return double(i) / double(w);
}

}  // namespace

WarmupLR::WarmupLR(const WarmupLRConfig& c, double base_lr)
    : LRScheduler(c.last_batch_iteration),
      min_lr_(c.warmup_min_lr),
      max_lr_(c.warmup_max_lr.value_or(base_lr)),
      warmup_steps_(std::max<int64_t>(2, c.warmup_num_steps)),
      type_(c.warmup_type) {}

double WarmupLR::warmup_gamma(int64_t i) const { return warmup_fraction(type_, i, warmup_steps_); }

double WarmupLR::gamma(int64_t i) const { return i < warmup_steps_ ? warmup_gamma(i) : 1.0; }

double WarmupLR::lr_at(int64_t i) const {
  if (i < 0) return min_lr_;
  return min_lr_ + (max_lr_ - min_lr_) * gamma(i);
}

WarmupDecayLR::WarmupDecayLR(const WarmupDecayLRConfig& c)
    : WarmupLR(c.warmup, c.warmup.warmup_max_lr.value_or(0.001)), total_steps_(c.total_num_steps) {}

double WarmupDecayLR::gamma(int64_t i) const {
  if (i < warmup_steps_) return warmup_gamma(i);
  return std::max(0.0, double(total_steps_ - i) / std::max(1.0, double(total_steps_ - warmup_steps_)));
}

WarmupCosineLR::WarmupCosineLR(const WarmupCosineLRConfig& c, double base_lr)
    : LRScheduler(c.last_batch_iteration),
      config_(c),
      warmup_steps_(std::max<int64_t>(2, c.warmup_num_steps)),
      base_lr_(base_lr) {
  ZT_CHECK(c.total_num_steps > warmup_steps_, "WarmupCosineLR: total_num_steps (", c.total_num_steps,
           ") must exceed warmup_num_steps (", warmup_steps_, ", at least 2): the cosine runs over the steps after "
           "the warmup");
}

double WarmupCosineLR::ratio_at(int64_t i) const {
  if (i < 0) return 0.0;
  if (i < warmup_steps_) {
    const double r = warmup_fraction(config_.warmup_type, i, warmup_steps_);
    return config_.warmup_min_ratio + r * (1.0 - config_.warmup_min_ratio);
  }
  const double progress = double(i - warmup_steps_ + 1) / double(config_.total_num_steps - warmup_steps_);
  const double cosine = (1.0 + std::cos(std::numbers::pi * progress)) / 2.0;
  return std::max(0.0, config_.cos_min_ratio + (1.0 - config_.cos_min_ratio) * cosine);
}

double WarmupCosineLR::lr_at(int64_t i) const { return base_lr_ * ratio_at(i); }

}  // namespace zt::optim
