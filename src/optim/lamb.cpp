#include "zt/optim/lamb.hpp"

#include <algorithm>
#include <cmath>

namespace zt::optim {

namespace {

std::vector<Segment> segments_of(const StepTarget& t, const std::string& who) {
  const int64_t n = t.param.numel();
  if (t.segments.empty()) return {Segment{0, n, -1}};
  for (const Segment& s : t.segments)
    ZT_CHECK(s.offset >= 0 && s.numel >= 0 && s.offset + s.numel <= n, who, ": buffer ", t.id, " segment [",
             s.offset, ", ", s.offset + s.numel, ") lies outside its ", n, " elements");
  return t.segments;
}

}  // namespace

void Lamb::step(const std::vector<StepTarget>& targets, double lr, double grad_scale) {
  ++step_count_;
  const LambConfig& c = config_;
  const double t_step = double(step_count_);
  const double step_size =
      c.bias_correction ? lr * std::sqrt(1.0 - std::pow(c.beta2, t_step)) / (1.0 - std::pow(c.beta1, t_step)) : lr;
  auto denom = [&](double v) { return c.eps_inside_sqrt ? std::sqrt(v + c.eps) : std::sqrt(v) + c.eps; };

  struct Piece {
    float *p, *m, *v;
    int64_t n;
    SegmentNorms norms;
  };
  std::vector<Piece> pieces;
  // Pass 1: the moments, and the squared norms of the parameters and of the update.
  for (const StepTarget& t : targets) {
    check_host_target(t);
    float* p = t.param.data<float>();
    const float* g = t.grad.data<float>();
    float* m = state_for(t, "exp_avg").data<float>();
    float* v = state_for(t, "exp_avg_sq").data<float>();
    for (const Segment& s : segments_of(t, name())) {
      double w_sq = 0, u_sq = 0;
      float *ps = p + s.offset, *ms = m + s.offset, *vs = v + s.offset;
      const float* gs = g + s.offset;
#pragma omp parallel for schedule(static) reduction(+ : w_sq, u_sq)
      for (int64_t i = 0; i < s.numel; ++i) {
        const double gi = double(gs[i]) * grad_scale;
        const double mi = c.beta1 * ms[i] + (1.0 - c.beta1) * gi;
        const double vi = c.beta2 * vs[i] + (1.0 - c.beta2) * gi * gi;
        ms[i] = float(mi);
        vs[i] = float(vi);
        const double u = double(ms[i]) / denom(vs[i]) + c.weight_decay * ps[i];
        w_sq += double(ps[i]) * ps[i];
        u_sq += u * u;
      }
      pieces.push_back({ps, ms, vs, s.numel, {s.key, w_sq, u_sq}});
    }
  }
  if (norm_reducer_) {
    std::vector<SegmentNorms> keyed;
    for (const Piece& pc : pieces)
      if (pc.norms.key >= 0) keyed.push_back(pc.norms);
    if (!keyed.empty()) {
      const size_t count = keyed.size();
      norm_reducer_(keyed);
      ZT_CHECK(keyed.size() == count, name(), ": the norm reducer returned ", keyed.size(), " segments for ", count);
      size_t k = 0;
      for (Piece& pc : pieces)
        if (pc.norms.key >= 0) pc.norms = keyed[k++];
    }
  }
  // Pass 2: the trust ratio per segment, then the step (the update recomputed from the moments).
  coefficients_.clear();
  for (const Piece& pc : pieces) {
    const double w = std::sqrt(pc.norms.param_sq), u = std::sqrt(pc.norms.update_sq);
    const double ratio = (w != 0 && u != 0) ? std::clamp(w / u, c.min_coeff, c.max_coeff) : 1.0;
    coefficients_.push_back(ratio);
    const double scale = step_size * ratio;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < pc.n; ++i) {
      const double u_i = double(pc.m[i]) / denom(pc.v[i]) + c.weight_decay * pc.p[i];
      pc.p[i] = float(pc.p[i] - scale * u_i);
    }
  }
}

}  // namespace zt::optim
