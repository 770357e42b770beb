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
  std::vector<size_t> first_piece;  // per target, its first piece; then pieces.size()
  // Pass 1: the moments, and the squared norms of the parameters and of the update.
  for (const StepTarget& t : targets) {
    check_host_target(t);
    first_piece.push_back(pieces.size());
    float* p = t.param.data<float>();
    float* m = state_for(t, "exp_avg").data<float>();
    float* v = state_for(t, "exp_avg_sq").data<float>();
    for (const Segment& s : segments_of(t, name())) {
      double w_sq = 0, u_sq = 0;
      float *ps = p + s.offset, *ms = m + s.offset, *vs = v + s.offset;
      visit_grad(t, [&](auto grad) {
        double ws = 0, us = 0;  // OpenMP reduces locals, not a lambda's captures
#pragma omp parallel for schedule(static) reduction(+ : ws, us)
        for (int64_t i = 0; i < s.numel; ++i) {
          const double gi = double(grad(s.offset + i)) * grad_scale;
          const double mi = c.beta1 * ms[i] + (1.0 - c.beta1) * gi;
          const double vi = c.beta2 * vs[i] + (1.0 - c.beta2) * gi * gi;
          ms[i] = float(mi);
          vs[i] = float(vi);
          const double u = double(ms[i]) / denom(vs[i]) + c.weight_decay * ps[i];
          ws += double(ps[i]) * ps[i];
          us += u * u;
        }
        w_sq = ws;
        u_sq = us;
      });
      pieces.push_back({ps, ms, vs, s.numel, {s.key, w_sq, u_sq}});
    }
  }
  first_piece.push_back(pieces.size());
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
  for (size_t ti = 0; ti < targets.size(); ++ti) {
    for (size_t pi = first_piece[ti]; pi < first_piece[ti + 1]; ++pi) {
      const Piece& pc = pieces[pi];
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
    finish_target(targets[ti]);
  }
}

}  // namespace zt::optim
