// Containers that compose modules without writing a new class: Sequential runs its children
// in order, Residual adds its input to its body's output, ModuleList only holds children
// (named "0", "1", ...) for a parent that runs them itself.
#pragma once

#include <vector>

#include "zt/nn/module.hpp"

namespace zt::nn {

class Sequential : public Module {
 public:
  Sequential() = default;
  explicit Sequential(std::vector<std::shared_ptr<Module>> modules);
  // Children are named by position ("0", "1", ...) unless a name is given.
  Sequential& add(std::shared_ptr<Module> m, const std::string& name = "");
  std::string type_name() const override { return "Sequential"; }
  size_t size() const { return order_.size(); }

 protected:
  Tensor forward_impl(const Tensor& x) override;
  Tensor backward_impl(const Tensor& dy) override;

 private:
  std::vector<Module*> order_;
};

// y = x + body(x). The body is registered as "fn" unless named otherwise.
class Residual : public Module {
 public:
  explicit Residual(std::shared_ptr<Module> body, const std::string& name = "fn");
  std::string type_name() const override { return "Residual"; }

 protected:
  Tensor forward_impl(const Tensor& x) override;
  Tensor backward_impl(const Tensor& dy) override;

 private:
  Module* body_;
};

// Named children that a parent runs itself (Hugging Face's "transformer" or "model" level).
class ModuleDict : public Module {
 public:
  template <class M>
  std::shared_ptr<M> add(const std::string& name, std::shared_ptr<M> m) {
    return register_module(name, std::move(m));
  }
  std::string type_name() const override { return "ModuleDict"; }

 protected:
  Tensor forward_impl(const Tensor&) override;
  Tensor backward_impl(const Tensor&) override;
};

class ModuleList : public Module {
 public:
  template <class M>
  std::shared_ptr<M> append(std::shared_ptr<M> m) {
    items_.push_back(m.get());
    return register_module(std::to_string(items_.size() - 1), std::move(m));
  }
  std::string type_name() const override { return "ModuleList"; }
  size_t size() const { return items_.size(); }
  Module& operator[](size_t i) const { return *items_.at(i); }
  std::shared_ptr<Module> at(size_t i) const;
  // Puts m in place of item i under the same name ("i"): a parent that wraps its blocks (in an
  // nn::Checkpoint, say) keeps their names and order.
  void replace(size_t i, std::shared_ptr<Module> m);

 protected:
  Tensor forward_impl(const Tensor&) override;   // a ModuleList is not run as a whole
  Tensor backward_impl(const Tensor&) override;

 private:
  std::vector<Module*> items_;
};

}  // namespace zt::nn
