#include "zt/optim/factory.hpp"

#include <algorithm>
#include <cctype>

#include "io/near_name.hpp"
#include "zt/core/json_reader.hpp"
#include "zt/engine/config.hpp"
#include "zt/optim/adamw.hpp"
#include "zt/optim/lamb.hpp"
#include "zt/optim/lion.hpp"
#include "zt/optim/sgd.hpp"

namespace zt::optim {

namespace {

const char* kClipHint = "clip gradients with the top-level \"gradient_clipping\" instead";

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return s;
}

// DeepSpeed's own optimizers and the torch.optim classes it reaches by name that zt does not have.
const std::vector<std::string>& unsupported_types() {
  static const std::vector<std::string> names = {
      "OneBitAdam", "ZeroOneAdam", "OneBitLamb", "Adagrad", "MuAdam", "MuAdamW", "MuSGD", "Muon",
      "RMSprop",    "Adamax",      "Adadelta",   "NAdam",   "RAdam",  "ASGD",    "Rprop", "LBFGS", "SparseAdam"};
  return names;
}

double read_lr(JsonReader& r) { return r.get_number("lr", 1e-3, Bounds::at_least(0)); }

std::pair<double, double> read_betas(JsonReader& r) {
  return r.get_pair("betas", {0.9, 0.999}, Bounds::unit_open_right());
}

OptimizerBuild make_adam(const std::string& type, JsonReader& r) {
  OptimizerBuild b;
  b.lr = read_lr(r);
  const bool torch_adam = r.get_bool("torch_adam", false);
  AdamWConfig c;
  c.adam_w_mode = r.get_bool("adam_w_mode", true);
  if (type == "AdamW" && !c.adam_w_mode)
    r.fail("adam_w_mode", "type AdamW always decays weights decoupled; use type Adam for adam_w_mode false");
  std::tie(c.beta1, c.beta2) = read_betas(r);
  c.eps = r.get_number("eps", 1e-8, Bounds::at_least(0));
  // FusedAdam and DeepSpeedCPUAdam default to no decay; torch.optim.AdamW to 0.01.
  c.weight_decay = r.get_number("weight_decay", torch_adam && c.adam_w_mode ? 0.01 : 0.0, Bounds::at_least(0));
  r.get_bool("set_grad_none", true);
  r.unsupported("bias_correction", true);
  r.unsupported("amsgrad", false);
  r.reject("max_grad_norm", str("DeepSpeed's Adam does not take max_grad_norm; ", kClipHint));
  r.finish();
  b.optimizer = std::make_unique<AdamW>(c);
  return b;
}

OptimizerBuild make_lion(JsonReader& r) {
  OptimizerBuild b;
  b.lr = read_lr(r);
  LionConfig c;
  std::tie(c.beta1, c.beta2) = r.get_pair("betas", {0.9, 0.999}, Bounds::between(0, 1));
  c.weight_decay = r.get_number("weight_decay", 0.0, Bounds::at_least(0));
  r.get_bool("set_grad_none", true);
  r.finish();
  b.optimizer = std::make_unique<Lion>(c);
  return b;
}

OptimizerBuild make_lamb(JsonReader& r) {
  OptimizerBuild b;
  b.lr = read_lr(r);
  LambConfig c;
  c.bias_correction = r.get_bool("bias_correction", true);
  std::tie(c.beta1, c.beta2) = read_betas(r);
  c.eps = r.get_number("eps", 1e-8, Bounds::at_least(0));
  c.eps_inside_sqrt = r.get_bool("eps_inside_sqrt", false);
  c.weight_decay = r.get_number("weight_decay", 0.0, Bounds::at_least(0));
  c.max_coeff = r.get_number("max_coeff", 10.0, Bounds::above(0));
  c.min_coeff = r.get_number("min_coeff", 0.01, Bounds::at_least(0));
  if (c.min_coeff > c.max_coeff)
    r.fail("min_coeff", str("min_coeff must not exceed max_coeff (", c.max_coeff, ")"));
  r.unsupported("max_grad_norm", 0.0, kClipHint);
  r.unsupported("amsgrad", false);
  r.finish();
  b.optimizer = std::make_unique<Lamb>(c);
  return b;
}

OptimizerBuild make_sgd(JsonReader& r) {
  OptimizerBuild b;
  b.lr = read_lr(r);
  SgdConfig c;
  c.momentum = r.get_number("momentum", 0.0, Bounds::at_least(0));
  c.dampening = r.get_number("dampening", 0.0);
  c.weight_decay = r.get_number("weight_decay", 0.0, Bounds::at_least(0));
  c.nesterov = r.get_bool("nesterov", false);
  if (c.nesterov && (c.momentum <= 0 || c.dampening != 0))
    r.fail("nesterov", str("nesterov momentum needs momentum > 0 and dampening 0 (got momentum ", c.momentum,
                           ", dampening ", c.dampening, ")"));
  r.unsupported("maximize", false);
  r.finish();
  b.optimizer = std::make_unique<Sgd>(c);
  return b;
}

}  // namespace

std::vector<std::string> optimizer_types() { return {"Adam", "AdamW", "Lion", "LAMB", "SGD"}; }

std::string canonical_optimizer_type(const std::string& type, const std::string& source) {
  std::string supported;
  for (const std::string& t : optimizer_types()) {
    if (lower(t) == lower(type)) return t;
    supported += (supported.empty() ? "" : ", ") + t;
  }
  for (const std::string& t : unsupported_types())
    if (lower(t) == lower(type))
      ZT_THROW(source, ": optimizer.type = \"", type,
               "\": a DeepSpeed optimizer that this version of zt does not support; supported: ", supported);
  std::vector<std::string> all = optimizer_types();
  all.insert(all.end(), unsupported_types().begin(), unsupported_types().end());
  ZT_THROW(source, ": optimizer.type = \"", type, "\": unknown optimizer", io::did_you_mean(type, all),
           "; supported: ", supported);
}

OptimizerBuild make_optimizer(const std::string& type, const nlohmann::json& params, const std::string& source) {
  const std::string canonical = canonical_optimizer_type(type, source);
  JsonReader r(params, "optimizer.params", source);
  if (canonical == "Adam" || canonical == "AdamW") return make_adam(canonical, r);
  if (canonical == "Lion") return make_lion(r);
  if (canonical == "LAMB") return make_lamb(r);
  return make_sgd(r);
}

OptimizerBuild make_optimizer(const engine::OptimizerConfig& config, const std::string& source) {
  return make_optimizer(config.type, config.params, source);
}

}  // namespace zt::optim
