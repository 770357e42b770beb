#include "zt/nn/loss.hpp"

#include "zt/core/cuda_graph.hpp"
#include "zt/kernels/ops.hpp"
#include "zt/nn/layers.hpp"

namespace zt::nn {

size_t CrossEntropyLoss::queue_rows(const Tensor& logits, const Tensor& targets, double grad_scale) {
  const Tensor rows = as_rows(logits);
  const Tensor flat_targets = targets.flatten();
  ZT_CHECK(flat_targets.numel() == rows.size(0), "CrossEntropyLoss: ", rows.size(0), " rows of logits but ",
           flat_targets.numel(), " targets");
  const size_t index = pending_.size();
  if (slots_.size() <= index) slots_.push_back(std::make_unique<Slot>());
  Slot& slot = *slots_[index];
  const DType stats = ops::stats_dtype(logits.dtype());
  if (!slot.losses.defined() || slot.losses.numel() != rows.size(0) || slot.losses.dtype() != stats ||
      slot.losses.device() != logits.device())
    slot.losses = Tensor::empty({rows.size(0)}, stats, logits.device());
  if (!slot.count_and_dloss.defined() || slot.count_and_dloss.device() != logits.device())
    slot.count_and_dloss = Tensor::empty({2}, DType::f32, logits.device());
  dlogits_ = in_place_grad_ ? rows : Tensor::empty(rows.shape(), rows.dtype(), rows.device());
  // The count of valid targets scales the gradient: it is made where the logits are, so that
  // nothing queued depends on a host value of the batch.
  ops::cross_entropy_fused_counting(slot.losses, dlogits_, rows, flat_targets.to(rows.device()), grad_scale,
                                    slot.count_and_dloss);
  dlogits_ = dlogits_.reshape(logits.shape());
  slot.losses_back.queue(slot.losses);
  slot.count_back.queue(slot.count_and_dloss);
  on_graph_launch([this, index](bool replay) {
    slots_[index]->losses_back.requeued();
    slots_[index]->count_back.requeued();
    if (replay) pending_.push_back(index);
  });
  return index;
}

double CrossEntropyLoss::mean_of(size_t index) {
  Slot& slot = *slots_[index];
  const Tensor& host = slot.losses_back.wait();
  const int64_t count = int64_t(slot.count_back.wait().data<float>()[0]);
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
  for (size_t index : pending_) values.push_back(mean_of(index));
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
