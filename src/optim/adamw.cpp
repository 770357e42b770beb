#include "zt/optim/adamw.hpp"

#include "zt/kernels/ops.hpp"

namespace zt::optim {

void AdamW::step(const std::vector<StepTarget>& targets, double lr, double grad_scale) {
  ++step_count_;
  ops::AdamWParams p;
  p.lr = lr;
  p.beta1 = config_.beta1;
  p.beta2 = config_.beta2;
  p.eps = config_.eps;
  p.step = step_count_;
  for (const StepTarget& t : targets) {
    ZT_CHECK(!t.queued_scale.defined() || takes_queued_scale(), name(), ": buffer ", t.id,
             " comes with a queued gradient scale, which the L2 form with weight decay cannot take");
    const Tensor& m = state_for(t, "exp_avg");
    const Tensor& v = state_for(t, "exp_avg_sq");
    if (config_.adam_w_mode || config_.weight_decay == 0) {
      // AdamW's decoupled decay, or Adam without decay (the same update).
      p.weight_decay = config_.adam_w_mode ? config_.weight_decay : 0.0;
      ops::adamw_step(t.param, t.grad, m, v, p, grad_scale, t.param_out, t.queued_scale);
    } else {
      // Adam's L2 form: grad += wd * param, then the update without decoupled decay.
      Tensor g = Tensor::empty(t.grad.shape(), DType::f32, t.grad.device());
      ops::cast(g, t.grad);
      if (grad_scale != 1.0) ops::scale_(g, grad_scale);
      Tensor decay = t.param.clone();
      ops::scale_(decay, config_.weight_decay);
      ops::add_(g, decay);
      p.weight_decay = 0;
      ops::adamw_step(t.param, g, m, v, p, 1.0, t.param_out);
    }
    finish_target(t, /*param_out_written=*/true);
  }
}

}  // namespace zt::optim
