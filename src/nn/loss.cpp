#include "zt/nn/loss.hpp"

#include "zt/core/cuda_graph.hpp"
#include "zt/kernels/ops.hpp"
#include "zt/nn/layers.hpp"

namespace zt::nn {

CrossEntropyLoss::RowLosses CrossEntropyLoss::queue_rows(const Tensor& logits, const Tensor& targets,
                                                         double grad_scale) {
  const Tensor rows = as_rows(logits);
  const Tensor flat_targets = targets.flatten();
  ZT_CHECK(flat_targets.numel() == rows.size(0), "CrossEntropyLoss: ", rows.size(0), " rows of logits but ",
           flat_targets.numel(), " targets");
  RowLosses r{0, pending_.size()};
  if (slots_.size() <= r.slot) slots_.push_back(std::make_unique<Slot>());
  Slot& slot = *slots_[r.slot];
  const DType stats = ops::stats_dtype(logits.dtype());
  if (!slot.losses.defined() || slot.losses.numel() != rows.size(0) || slot.losses.dtype() != stats ||
      slot.losses.device() != logits.device())
    slot.losses = Tensor::empty({rows.size(0)}, stats, logits.device());
  dlogits_ = in_place_grad_ ? rows : Tensor::empty(rows.shape(), rows.dtype(), rows.device());
  if (flat_targets.device().is_cpu() || logits.device().is_cpu()) {
    // The count of valid targets scales the gradient; count them first so that one pass suffices,
    // on the host copy (targets given on the host, as the engine does, cost no wait for the GPU).
    const Tensor host = flat_targets.to(Device::cpu());
    const int32_t* t = host.data<int32_t>();
    for (int64_t i = 0; i < host.numel(); ++i) r.count += t[i] != ops::kIgnoreIndex;
    const double dloss = r.count ? grad_scale / double(r.count) : 0.0;
    ops::cross_entropy_fused(slot.losses, dlogits_, rows, flat_targets.to(rows.device()), dloss, /*count_rows=*/false);
  } else {
    r.count = -1;
    if (!slot.count_and_dloss.defined() || slot.count_and_dloss.device() != logits.device())
      slot.count_and_dloss = Tensor::empty({2}, DType::f32, logits.device());
    ops::cross_entropy_fused_counting(slot.losses, dlogits_, rows, flat_targets, grad_scale, slot.count_and_dloss);
    slot.count_back.queue(slot.count_and_dloss);
  }
  dlogits_ = dlogits_.reshape(logits.shape());
  slot.losses_back.queue(slot.losses);
  on_graph_launch([this, r](bool replay) {
    Slot& s = *slots_[r.slot];
    s.losses_back.requeued();
    if (r.count < 0) s.count_back.requeued();
    if (replay) pending_.push_back(r);
  });
  return r;
}

double CrossEntropyLoss::mean_of(const RowLosses& r) {
  Slot& slot = *slots_[r.slot];
  const Tensor& host = slot.losses_back.wait();
  const int64_t count = r.count >= 0 ? r.count : int64_t(slot.count_back.wait().data<float>()[0]);
  if (count == 0) return 0.0;
  // A plain loop over the floats (Tensor::to_floats converts element by element).
  double sum = 0;
  if (host.dtype() == DType::f32) {
    const float* v = host.data<float>();
    for (int64_t i = 0; i < host.numel(); ++i) sum += v[i];
  } else {
    for (float v : host.to_floats()) sum += v;
  }
  return sum / double(count);
}

double CrossEntropyLoss::forward(const Tensor& logits, const Tensor& targets, double grad_scale) {
  return mean_of(queue_rows(logits, targets, grad_scale));
}

void CrossEntropyLoss::forward_queued(const Tensor& logits, const Tensor& targets, double grad_scale) {
  pending_.push_back(queue_rows(logits, targets, grad_scale));
}

std::vector<double> CrossEntropyLoss::take_queued() {
  std::vector<double> values;
  for (const RowLosses& r : pending_) values.push_back(mean_of(r));
  pending_.clear();
  return values;
}

Tensor CrossEntropyLoss::backward() {
  ZT_CHECK(dlogits_.defined(), "CrossEntropyLoss: backward before forward");
  Tensor g = dlogits_;
  dlogits_ = Tensor();
  return g;
}

double MSELoss::forward(const Tensor& pred, const Tensor& target, double grad_scale) {
  dpred_ = Tensor::empty(pred.shape(), pred.dtype(), pred.device());
  return ops::mse_loss(dpred_, pred, target.to(pred.device()), grad_scale);
}

Tensor MSELoss::backward() {
  ZT_CHECK(dpred_.defined(), "MSELoss: backward before forward");
  Tensor g = dpred_;
  dpred_ = Tensor();
  return g;
}

}  // namespace zt::nn
