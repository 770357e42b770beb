// Optimizers by DeepSpeed's config names: {"type": "AdamW", "params": {"lr": ..., ...}} gives the
// optimizer and its base learning rate. Types are matched ignoring case: Adam, AdamW, Lion, LAMB
// (DeepSpeed's "Lamb"), SGD (torch.optim.SGD, which DeepSpeed reaches by name). Each type reads
// the parameters of the DeepSpeed (or torch) class it stands for, with the same defaults:
//   Adam/AdamW  lr 1e-3, betas [0.9, 0.999], eps 1e-8, weight_decay 0 (FusedAdam's; 0.01 for
//               AdamW with torch_adam, as torch.optim.AdamW), adam_w_mode true (Adam is AdamW unless
//               adam_w_mode is false; AdamW with adam_w_mode false is an error), torch_adam false,
//               set_grad_none (no effect here), bias_correction true and amsgrad false only
//   Lion        lr 1e-3, betas [0.9, 0.999], weight_decay 0, set_grad_none
//   LAMB        lr 1e-3, bias_correction true, betas [0.9, 0.999], eps 1e-8, eps_inside_sqrt false,
//               weight_decay 0, max_coeff 10, min_coeff 0.01, max_grad_norm 0 and amsgrad false only
//   SGD         lr 1e-3, momentum 0, dampening 0, weight_decay 0, nesterov false, maximize false only
// An unknown parameter is an error naming optimizer.params.<key> and the nearest valid one.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "zt/optim/optimizer.hpp"

namespace zt::engine {
struct OptimizerConfig;
}

namespace zt::optim {

struct OptimizerBuild {
  std::unique_ptr<Optimizer> optimizer;
  double lr = 1e-3;  // params.lr, or the class's default
};

// source names the config in errors ("ds_config.json").
OptimizerBuild make_optimizer(const std::string& type, const nlohmann::json& params,
                              const std::string& source = "optimizer config");
OptimizerBuild make_optimizer(const engine::OptimizerConfig& config, const std::string& source = "optimizer config");

// The supported spelling of type ("adamw" -> "AdamW"); an error for DeepSpeed optimizers this
// version does not have (OneBitAdam, ...) and for unknown names (with the nearest one).
std::string canonical_optimizer_type(const std::string& type, const std::string& source = "optimizer config");
std::vector<std::string> optimizer_types();  // Adam, AdamW, Lion, LAMB, SGD

}  // namespace zt::optim
