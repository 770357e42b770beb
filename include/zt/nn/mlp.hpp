// The transformer feed-forward block: GELU (GPT-2's c_fc -> gelu -> c_proj) or SwiGLU
// (Llama's down_proj(silu(gate_proj(x)) * up_proj(x))). Shapes: x (..., C), hidden H.
#pragma once

#include "zt/nn/layers.hpp"
#include "zt/nn/sibling_linears.hpp"

namespace zt::nn {

enum class MLPKind { gelu, swiglu };

struct MLPOptions {
  int64_t n_embd = 0;   // C
  int64_t hidden = 0;   // H
  MLPKind kind = MLPKind::gelu;
  bool bias = true;
  ops::WeightLayout layout = ops::WeightLayout::out_in;
  double init_std = 0.02;
  double out_init_std = 0.02;
};

class MLP : public Module {
 public:
  explicit MLP(const MLPOptions& options);
  std::string type_name() const override { return "MLP"; }
  // For the next forward only: its output is residual plus the block's, added by the last product.
  void add_to_next_output(const Tensor& residual);

 protected:
  Tensor forward_impl(const Tensor& x) override;
  Tensor backward_impl(const Tensor& dy) override;
  void drop_saved() override;

 private:
  MLPOptions options_;
  std::shared_ptr<Linear> c_fc_, c_proj_;                  // gelu
  std::shared_ptr<Linear> gate_proj_, up_proj_, down_proj_;  // swiglu
  std::unique_ptr<SiblingLinears> gate_up_proj_;             // gate_proj and up_proj as one
  Tensor gate_up_;  // (..., 2H), saved by the SwiGLU form
};

}  // namespace zt::nn
