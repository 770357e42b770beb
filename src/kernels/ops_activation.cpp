#include "cpu/cpu_ops.hpp"
#include "dispatch.hpp"

namespace zt::ops {

using kernels::check_matches;

void gelu_forward(const Tensor& out, const Tensor& inp) {
  check_matches(out, inp, inp.shape(), "gelu_forward", "out");
  kernels::dispatch_cpu_float(inp, "gelu_forward", [&](auto zero) {
    using T = decltype(zero);
    cpu::gelu_forward<T>(out.data<T>(), inp.data<T>(), inp.numel());
  });
}

void gelu_backward(const Tensor& dinp, const Tensor& dout, const Tensor& inp) {
  check_matches(dinp, inp, inp.shape(), "gelu_backward", "dinp");
  check_matches(dout, inp, inp.shape(), "gelu_backward", "dout");
  kernels::dispatch_cpu_float(inp, "gelu_backward", [&](auto zero) {
    using T = decltype(zero);
    cpu::gelu_backward<T>(dinp.data<T>(), dout.data<T>(), inp.data<T>(), inp.numel());
  });
}

void swiglu_forward(const Tensor& out, const Tensor& gate, const Tensor& up) {
  check_matches(up, gate, gate.shape(), "swiglu_forward", "up");
  check_matches(out, gate, gate.shape(), "swiglu_forward", "out");
  kernels::dispatch_cpu_float(gate, "swiglu_forward", [&](auto zero) {
    using T = decltype(zero);
    cpu::swiglu_forward<T>(out.data<T>(), gate.data<T>(), up.data<T>(), gate.numel());
  });
}

void swiglu_backward(const Tensor& dgate, const Tensor& dup, const Tensor& dout, const Tensor& gate, const Tensor& up) {
  for (const auto& [t, name] : {std::pair{&dgate, "dgate"}, {&dup, "dup"}, {&dout, "dout"}, {&up, "up"}})
    check_matches(*t, gate, gate.shape(), "swiglu_backward", name);
  kernels::dispatch_cpu_float(gate, "swiglu_backward", [&](auto zero) {
    using T = decltype(zero);
    cpu::swiglu_backward<T>(dgate.data<T>(), dup.data<T>(), dout.data<T>(), gate.data<T>(), up.data<T>(),
                            gate.numel());
  });
}

}  // namespace zt::ops
