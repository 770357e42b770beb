#include "zt/nn/module.hpp"

#include <unordered_set>

namespace zt::nn {

namespace {
// Forwards nest on one thread (a Checkpoint's backward re-runs its body there), so a depth.
thread_local int g_recompute_depth = 0;
}  // namespace

RecomputeScope::RecomputeScope() { ++g_recompute_depth; }
RecomputeScope::~RecomputeScope() { --g_recompute_depth; }
bool Module::recomputing() { return g_recompute_depth > 0; }

void Module::begin_forward() {
  for (const auto& h : hooks_)
    if (h->before_forward) h->before_forward(*this);
  if (!recomputing()) {
    for (const auto& [name, p] : params_)
      if (p->requires_grad) ++p->pending_backward;
  }
}

void Module::end_forward() {
  for (const auto& h : hooks_)
    if (h->after_forward) h->after_forward(*this);
}

void Module::begin_backward() {
  for (const auto& h : hooks_)
    if (h->before_backward) h->before_backward(*this);
}

void Module::end_backward() {
  for (const auto& [name, p] : params_) {
    if (!p->requires_grad) continue;
    ZT_CHECK(p->pending_backward > 0, type_name(), ".", name, ": backward without a matching forward");
    if (--p->pending_backward == 0) {
      for (const auto& h : hooks_)
        if (h->grad_ready) h->grad_ready(*p);
    }
  }
  for (const auto& h : hooks_)
    if (h->after_backward) h->after_backward(*this);
}

Tensor Module::forward(const Tensor& x) {
  begin_forward();
  Tensor y = forward_impl(x);
  end_forward();
  return y;
}

Tensor Module::backward(const Tensor& dy) {
  begin_backward();
  Tensor dx = backward_impl(dy);
  end_backward();
  return dx;
}

Tensor Module::forward_together(const std::vector<Module*>& members, const std::function<Tensor()>& body) {
  for (Module* m : members) m->begin_forward();
  Tensor y = body();
  for (Module* m : members) m->end_forward();
  return y;
}

Tensor Module::backward_together(const std::vector<Module*>& members, const std::function<Tensor()>& body) {
  for (Module* m : members) m->begin_backward();
  Tensor dx = body();
  for (Module* m : members) m->end_backward();
  return dx;
}

ParameterPtr Module::register_parameter(const std::string& name, ParameterPtr p) {
  for (const auto& [existing, q] : params_)
    ZT_CHECK(existing != name, type_name(), ": parameter '", name, "' registered twice");
  params_.emplace_back(name, p);
  return p;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> m) {
  ZT_CHECK(m != nullptr, type_name(), ": child '", name, "' is null");
  for (const auto& [existing, c] : children_)
    ZT_CHECK(existing != name, type_name(), name.empty() ? ": a second transparent child" : ": child module '" + name +
             "' registered twice");
  children_.emplace_back(name, std::move(m));
}

void Module::replace_child(const std::string& name, std::shared_ptr<Module> m) {
  ZT_CHECK(m != nullptr, type_name(), ": replacement for child '", name, "' is null");
  for (auto& [existing, child] : children_) {
    if (existing != name) continue;
    child = std::move(m);
    return;
  }
  ZT_THROW(type_name(), ": no child module '", name, "' to replace");
}

void Module::release_saved() {
  drop_saved();
  for (const auto& [name, child] : children_) child->release_saved();
}

void Module::collect(const std::string& prefix, std::vector<std::pair<std::string, ParameterPtr>>& out) const {
  for (const auto& [name, p] : params_) out.emplace_back(prefix + name, p);
  for (const auto& [name, child] : children_) child->collect(name.empty() ? prefix : prefix + name + ".", out);
}

std::vector<std::pair<std::string, ParameterPtr>> Module::named_parameters() const {
  std::vector<std::pair<std::string, ParameterPtr>> all, unique;
  collect("", all);
  std::unordered_set<const Parameter*> seen;
  for (auto& entry : all)
    if (seen.insert(entry.second.get()).second) unique.push_back(std::move(entry));
  return unique;
}

std::vector<ParameterPtr> Module::parameters() const {
  std::vector<ParameterPtr> out;
  for (auto& [name, p] : named_parameters()) out.push_back(p);
  return out;
}

int64_t Module::parameter_count() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p->numel();
  return n;
}

void Module::visit(const std::function<void(const std::string&, Module&)>& fn, const std::string& prefix) {
  fn(prefix, *this);
  for (const auto& [name, child] : children_)
    child->visit(fn, prefix.empty() || name.empty() ? prefix + name : prefix + "." + name);
}

void Module::add_hooks(std::shared_ptr<ModuleHooks> hooks) { hooks_.push_back(std::move(hooks)); }

void Module::add_hooks_recursive(const std::shared_ptr<ModuleHooks>& hooks) {
  visit([&](const std::string&, Module& m) { m.add_hooks(hooks); });
}

void Module::clear_hooks_recursive() {
  visit([](const std::string&, Module& m) { m.hooks_.clear(); });
}

void Module::zero_grad() {
  for (const auto& p : parameters())
    if (p->grad.defined()) p->grad.zero_(), p->grad_unwritten = false;
}

void Module::init_parameters(Rng& rng) {
  visit([&](const std::string&, Module& m) { m.init_own_parameters(rng); });
}

}  // namespace zt::nn
