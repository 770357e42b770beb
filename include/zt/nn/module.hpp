// Module: a node of the model tree with explicit forward and backward.
//
// forward(x) and backward(dy) are the entry points: they run the hooks an engine installed
// (before/after forward and backward, and grad_ready for each parameter whose gradient is
// complete) around the module's own forward_impl/backward_impl. A module keeps what its
// backward needs from its forward (inputs, statistics) in its members; one forward must be
// followed by one backward before the next forward. release_saved() drops that state between
// the two (nn::Checkpoint does, and re-runs the forward inside its backward to rebuild it).
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
  // Drops what the last forward of this module and of every module below it kept for the
  // backward; a backward then needs the forward to run again first.
  void release_saved();
  // True while a forward re-runs inside a backward (RecomputeScope): the forward's parameter uses
  // were counted when it first ran, so Module::forward does not count them again, and
  // Parameter::pending_backward (and with it grad_ready) sees each use once.
  static bool recomputing();

  // For sibling modules whose forwards one fused op computes (projections of one input as one
  // product): runs every member's before-forward hooks and counts its parameter uses, then body,
  // then every member's after-forward hooks, as if each had run its own forward.
  static Tensor forward_together(const std::vector<Module*>& members, const std::function<Tensor()>& body);
  // The backward counterpart: every member's before-backward hooks, body, then each member's
  // parameters reported (grad_ready at their last use) and its after-backward hooks.
  static Tensor backward_together(const std::vector<Module*>& members, const std::function<Tensor()>& body);

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
  // Releases the tensors this module itself keeps between its forward and its backward. Every
  // module that keeps any overrides it; release_saved() calls it on the whole tree.
  virtual void drop_saved() {}

  ParameterPtr register_parameter(const std::string& name, ParameterPtr p);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    add_child(name, m);
    return m;
  }
  // A child that adds no name level: its parameters are named as if they were this module's
  // (a wrapper such as nn::Checkpoint keeps Hugging Face's names). At most one per module.
  template <class M>
  std::shared_ptr<M> register_transparent_module(std::shared_ptr<M> m) {
    add_child("", m);
    return m;
  }
  // Puts m in the place of the child registered as name (same name, same position).
  void replace_child(const std::string& name, std::shared_ptr<Module> m);

 private:
  void begin_forward();
  void end_forward();
  void begin_backward();
  void end_backward();
  void add_child(const std::string& name, std::shared_ptr<Module> m);
  void collect(const std::string& prefix, std::vector<std::pair<std::string, ParameterPtr>>& out) const;

  std::vector<std::pair<std::string, ParameterPtr>> params_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  std::vector<std::shared_ptr<ModuleHooks>> hooks_;
};

// Marks the forwards run while it lives as recomputations (Module::recomputing()); nests.
class RecomputeScope {
 public:
  RecomputeScope();
  ~RecomputeScope();
  RecomputeScope(const RecomputeScope&) = delete;
  RecomputeScope& operator=(const RecomputeScope&) = delete;
};

}  // namespace zt::nn
