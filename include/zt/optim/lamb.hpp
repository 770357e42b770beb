// LAMB (You et al. 2019) with DeepSpeed's FusedLamb arithmetic. Per element:
//   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
//   update = m / (sqrt(v) + eps) + weight_decay * p      (eps_inside_sqrt: m / sqrt(v + eps))
// per tensor: the trust ratio r = ||p|| / ||update||, clamped to [min_coeff, max_coeff] (1 when
// either norm is zero), then p -= step_size * r * update, where step_size = lr sqrt(1 - beta2^t) /
// (1 - beta1^t) with bias correction, lr without (the moments themselves are not corrected).
//
// "Per tensor" is per Segment of a target; a target without segments is one tensor (DeepSpeed's
// behaviour on a flat ZeRO partition). Elements outside every segment are left as they are. When
// ZeRO splits a tensor between ranks, give its pieces the same key and install a norm reducer that
// sums the pieces' squared norms across ranks before the ratio is taken.
#pragma once

#include <functional>

#include "zt/optim/optimizer.hpp"

namespace zt::optim {

struct LambConfig {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  bool bias_correction = true;
  bool eps_inside_sqrt = false;
  double max_coeff = 10.0, min_coeff = 0.01;
};

// The squared norms of one keyed segment: this rank's piece in, the whole tensor's out.
struct SegmentNorms {
  int64_t key = -1;
  double param_sq = 0, update_sq = 0;
};

class Lamb : public Optimizer {
 public:
  using NormReducer = std::function<void(std::vector<SegmentNorms>& keyed)>;

  explicit Lamb(const LambConfig& config) : config_(config) {}
  std::string name() const override { return "LAMB"; }
  void step(const std::vector<StepTarget>& targets, double lr, double grad_scale) override;
  std::vector<std::string> state_names() const override { return {"exp_avg", "exp_avg_sq"}; }
  bool streams_targets() const override { return false; }  // every target's norms come before any update
  bool set_betas(double beta1, double beta2) override {
    config_.beta1 = beta1;
    config_.beta2 = beta2;
    return true;
  }
  const LambConfig& config() const { return config_; }
  // Called once per step with every segment whose key >= 0 (in target, then segment order).
  void set_norm_reducer(NormReducer reducer) { norm_reducer_ = std::move(reducer); }
  // The trust ratios of the last step, one per segment in target order (FusedLamb.get_lamb_coeffs).
  const std::vector<double>& last_coefficients() const { return coefficients_; }

 private:
  LambConfig config_;
  NormReducer norm_reducer_;
  std::vector<double> coefficients_;
};

}  // namespace zt::optim
