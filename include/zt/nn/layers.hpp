// The leaf layers: Linear (with a fused activation), Embedding, LayerNorm, RMSNorm.
// Shapes: N rows (any leading dimensions flattened), C input and OC output features, V vocabulary.
#pragma once

#include <utility>

#include "zt/kernels/ops.hpp"
#include "zt/nn/module.hpp"

namespace zt::nn {

struct LinearOptions {
  int64_t in_features = 0;
  int64_t out_features = 0;
  bool bias = true;
  ops::WeightLayout layout = ops::WeightLayout::out_in;  // in_out for Hugging Face's GPT-2 Conv1D
  ops::Activation activation = ops::Activation::none;     // applied after the bias, fused
  double init_std = 0.02;
};

// y (..., OC) = act(x (..., C) @ W + b). Parameters "weight" and (optionally) "bias".
class Linear : public Module {
 public:
  // shared_weight ties this layer's weight to another module's parameter (it is then not
  // initialized here): GPT-2's lm_head reads wte.
  explicit Linear(const LinearOptions& options, ParameterPtr shared_weight = nullptr);
  std::string type_name() const override { return "Linear"; }
  const LinearOptions& options() const { return options_; }
  ParameterPtr weight, bias;
  // For the next backward only: this layer's input is `producer`'s output (after producer's fused
  // activation). This backward then returns the gradient of producer's pre-activation (the
  // activation's backward fused into the input-gradient product), and producer's backward takes
  // that gradient as is. The MLP pairs c_proj with c_fc this way.
  void backward_through_activation_of(Linear& producer);
  // For the next forward only: its output is residual (same shape) plus the layer's, the sum taken
  // in the product's epilogue on a GPU. The backward is unchanged (the residual's gradient is dy).
  void add_to_next_output(const Tensor& residual);

 protected:
  Tensor forward_impl(const Tensor& x) override;
  Tensor backward_impl(const Tensor& dy) override;
  void init_own_parameters(Rng& rng) override;
  void drop_saved() override;

 private:
  LinearOptions options_;
  bool owns_weight_;
  Tensor input_;    // (N, C)
  Tensor pre_act_;  // (N, OC) when an activation is fused
  Shape out_shape_;
  Tensor residual_;                         // see add_to_next_output
  Linear* activation_producer_ = nullptr;  // see backward_through_activation_of
  bool dy_is_pre_activation_ = false;      // set on the producer by its consumer
};

// y (..., C) = weight (V, C)[ids (...)], ids int32. Parameter "weight".
class Embedding : public Module {
 public:
  Embedding(int64_t num_embeddings, int64_t dim, double init_std = 0.02);
  std::string type_name() const override { return "Embedding"; }
  ParameterPtr weight;

 protected:
  Tensor forward_impl(const Tensor& ids) override;
  Tensor backward_impl(const Tensor& dy) override;  // returns undefined: ids take no gradient
  void init_own_parameters(Rng& rng) override;
  void drop_saved() override;

 private:
  double init_std_;
  Tensor ids_;  // (N)
};

// Parameters "weight" and (optionally) "bias", over the last dimension.
// A normalization over the last dimension that can also take a pre-norm block's residual add
// fused into it: forward_after_add normalizes x + residual in one pass, and backward_plus adds,
// in the same pass, the gradient that reaches that sum through the residual stream.
class Norm : public Module {
 public:
  // Returns (x + residual, its normalization), both (..., C); the sum is written over x. Runs the
  // module's hooks as forward does.
  std::pair<Tensor, Tensor> forward_after_add(const Tensor& x, const Tensor& residual);
  // dy: the gradient of the normalized output; dsum: the gradient of the norm's input reaching it
  // the other way (the residual). Returns the input's whole gradient. Runs the hooks as backward does.
  Tensor backward_plus(const Tensor& dy, const Tensor& dsum);

 protected:
  Tensor forward_impl(const Tensor& x) override { return normalize(x, Tensor()); }
  Tensor backward_impl(const Tensor& dy) override { return input_gradient(dy, Tensor()); }
  // x normalized, or x + residual (written over x) when residual is given; saves for the backward.
  virtual Tensor normalize(const Tensor& x, const Tensor& residual) = 0;
  // The gradient of the saved input, plus dsum when given.
  virtual Tensor input_gradient(const Tensor& dy, const Tensor& dsum) = 0;
};

class LayerNorm : public Norm {
 public:
  explicit LayerNorm(int64_t dim, double eps = 1e-5, bool bias = true);
  std::string type_name() const override { return "LayerNorm"; }
  ParameterPtr weight, bias;

 protected:
  Tensor normalize(const Tensor& x, const Tensor& residual) override;
  Tensor input_gradient(const Tensor& dy, const Tensor& dsum) override;
  void init_own_parameters(Rng& rng) override;
  void drop_saved() override;

 private:
  double eps_;
  Tensor input_, mean_, rstd_;  // (N, C), (N), (N)
};

// Parameter "weight"; y = x / rms(x) * weight.
class RMSNorm : public Norm {
 public:
  explicit RMSNorm(int64_t dim, double eps = 1e-6);
  std::string type_name() const override { return "RMSNorm"; }
  ParameterPtr weight;

 protected:
  Tensor normalize(const Tensor& x, const Tensor& residual) override;
  Tensor input_gradient(const Tensor& dy, const Tensor& dsum) override;
  void init_own_parameters(Rng& rng) override;
  void drop_saved() override;

 private:
  double eps_;
  Tensor input_, rstd_;  // (N, C), (N)
};

// Flattens all leading dimensions: (..., C) -> (N, C).
Tensor as_rows(const Tensor& x);

}  // namespace zt::nn
