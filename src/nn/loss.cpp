#include "zt/nn/loss.hpp"

#include "zt/kernels/ops.hpp"
#include "zt/nn/layers.hpp"

namespace zt::nn {

CrossEntropyLoss::RowLosses CrossEntropyLoss::queue_rows(const Tensor& logits, const Tensor& targets,
                                                         double grad_scale) {
  const Tensor rows = as_rows(logits);
  const Tensor flat_targets = targets.flatten();
  ZT_CHECK(flat_targets.numel() == rows.size(0), "CrossEntropyLoss: ", rows.size(0), " rows of logits but ",
           flat_targets.numel(), " targets");
  const Tensor losses = Tensor::empty({rows.size(0)}, ops::stats_dtype(logits.dtype()), logits.device());
  RowLosses r{0, pending_.size()};
  // The count of valid targets scales the gradient; count them first so that one pass suffices,
  // on the host copy (targets given on the host, as the engine does, cost no wait for the GPU).
  {
    const Tensor host = flat_targets.to(Device::cpu());
    const int32_t* t = host.data<int32_t>();
    for (int64_t i = 0; i < host.numel(); ++i) r.count += t[i] != ops::kIgnoreIndex;
  }
  count_ = r.count;
  dlogits_ = in_place_grad_ ? rows : Tensor::empty(rows.shape(), rows.dtype(), rows.device());
  const double dloss = r.count ? grad_scale / double(r.count) : 0.0;
  ops::cross_entropy_fused(losses, dlogits_, rows, flat_targets.to(rows.device()), dloss, /*count_rows=*/false);
  dlogits_ = dlogits_.reshape(logits.shape());
  if (readbacks_.size() <= r.slot) readbacks_.resize(r.slot + 1);
  readbacks_[r.slot].queue(losses);
  return r;
}

double CrossEntropyLoss::mean_of(const RowLosses& r) {
  const Tensor& host = readbacks_[r.slot].wait();
  if (r.count == 0) return 0.0;
  // A plain loop over the floats (Tensor::to_floats converts element by element).
  double sum = 0;
  if (host.dtype() == DType::f32) {
    const float* v = host.data<float>();
    for (int64_t i = 0; i < host.numel(); ++i) sum += v[i];
  } else {
    for (float v : host.to_floats()) sum += v;
  }
  return sum / double(r.count);
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
