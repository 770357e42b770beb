#include "zt/nn/layers.hpp"

namespace zt::nn {

Embedding::Embedding(int64_t num_embeddings, int64_t dim, double init_std) : init_std_(init_std) {
  ZT_CHECK(num_embeddings > 0 && dim > 0, "Embedding: sizes must be positive, got ", num_embeddings, " x ", dim);
  weight = register_parameter("weight", make_parameter({num_embeddings, dim}));
}

void Embedding::init_own_parameters(Rng& rng) { fill_normal(weight->data, 0.0, init_std_, rng); }

Tensor Embedding::forward_impl(const Tensor& ids) {
  ids_ = ids.flatten();
  const int64_t c = weight->shape[1];
  Tensor out = Tensor::empty({ids_.numel(), c}, weight->data.dtype(), weight->data.device());
  ops::embedding_forward(out, ids_, weight->data, false);
  Shape shape = ids.shape();
  shape.push_back(c);
  return out.reshape(shape);
}

Tensor Embedding::backward_impl(const Tensor& dy) {
  ZT_CHECK(ids_.defined(), "Embedding: backward before forward");
  if (weight->requires_grad) ops::embedding_backward(weight->grad_for_accumulate(), as_rows(dy), ids_);
  drop_saved();
  return Tensor();
}

void Embedding::drop_saved() { ids_ = Tensor(); }

}  // namespace zt::nn
