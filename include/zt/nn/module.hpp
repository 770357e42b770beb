// Module: a node of the model tree with explicit forward and backward.
//
// forward(x) and backward(dy) are the entry points: they run the hooks an engine installed
// (before/after forward and backward, and grad_ready for each parameter whose gradient is
// complete) around the module's own forward_impl/backward_impl. A module keeps what its
// backward needs from its forward (inputs, statistics) in its members; one forward must be
// followed by one backward before the next forward (activation checkpointing re-runs forward).
//
// Parameters are registered under Hugging Face's names, so that named_parameters() of a model
// spells exactly what its model.safetensors holds.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "zt/core/random.hpp"
#include "zt/nn/parameter.hpp"

namespace zt::nn {

class Module;

// What an engine installs; every callback is optional.
struct ModuleHooks {
  std::function<void(Module&)> before_forward;
  std::function<void(Module&)> after_forward;
  std::function<void(Module&)> before_backward;
  std::function<void(Module&)> after_backward;
  std::function<void(Parameter&)> grad_ready;
};

class Module {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  Tensor forward(const Tensor& x);
  Tensor backward(const Tensor& dy);  // returns dLoss/dx (undefined when x takes no gradient, e.g. ids)

  virtual std::string type_name() const = 0;

  // Every parameter of the tree with its dotted name; a shared (tied) parameter appears once,
  // under the first name met in registration order.
  std::vector<std::pair<std::string, ParameterPtr>> named_parameters() const;
  std::vector<ParameterPtr> parameters() const;
  int64_t parameter_count() const;
  // The parameters registered on this module itself (not its children).
  const std::vector<std::pair<std::string, ParameterPtr>>& own_parameters() const { return params_; }
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const { return children_; }
  // Depth-first, parents before children, with dotted names ("" for this module).
  void visit(const std::function<void(const std::string&, Module&)>& fn, const std::string& prefix = "");

  void add_hooks(std::shared_ptr<ModuleHooks> hooks);  // on this module only
  void add_hooks_recursive(const std::shared_ptr<ModuleHooks>& hooks);
  void clear_hooks_recursive();

  void zero_grad();  // zeroes the gradients of the whole tree (keeps their memory)
  // Draws fresh initial values for the tree's parameters (each module's own scheme).
  void init_parameters(Rng& rng);

 protected:
  virtual Tensor forward_impl(const Tensor& x) = 0;
  virtual Tensor backward_impl(const Tensor& dy) = 0;
  virtual void init_own_parameters(Rng& rng) {}

  ParameterPtr register_parameter(const std::string& name, ParameterPtr p);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    add_child(name, m);
    return m;
  }

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> m);
  void collect(const std::string& prefix, std::vector<std::pair<std::string, ParameterPtr>>& out) const;

  std::vector<std::pair<std::string, ParameterPtr>> params_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  std::vector<std::shared_ptr<ModuleHooks>> hooks_;
};

}  // namespace zt::nn
