#include "zt/core/op_profile.hpp"
#include "cpu/cpu_ops.hpp"
#include "dispatch.hpp"
#if ZT_HAS_CUDA
#include "cuda/cuda_ops.hpp"
#endif

namespace zt::ops {

using kernels::check_matches;

void gelu_forward(const Tensor& out, const Tensor& inp) {
  ZT_OP_SCOPE("gelu_forward", inp);
  check_matches(out, inp, inp.shape(), "gelu_forward", "out");
#if ZT_HAS_CUDA
  if (inp.device().is_cuda()) {
    cuda::dispatch_float(inp, "gelu_forward", [&](auto zero) {
      using T = decltype(zero);
      cuda::gelu_forward<T>(cuda::ptr<T>(out), cuda::ptr<T>(inp), inp.numel());
    });
    return;
  }
#endif
  kernels::dispatch_cpu_float(inp, "gelu_forward", [&](auto zero) {
    using T = decltype(zero);
    cpu::gelu_forward<T>(out.data<T>(), inp.data<T>(), inp.numel());
  });
}

void gelu_backward(const Tensor& dinp, const Tensor& dout, const Tensor& inp) {
  ZT_OP_SCOPE("gelu_backward", inp);
  check_matches(dinp, inp, inp.shape(), "gelu_backward", "dinp");
  check_matches(dout, inp, inp.shape(), "gelu_backward", "dout");
#if ZT_HAS_CUDA
  if (inp.device().is_cuda()) {
    cuda::dispatch_float(inp, "gelu_backward", [&](auto zero) {
      using T = decltype(zero);
      cuda::gelu_backward<T>(cuda::ptr<T>(dinp), cuda::ptr<T>(dout), cuda::ptr<T>(inp), inp.numel());
    });
    return;
  }
#endif
  kernels::dispatch_cpu_float(inp, "gelu_backward", [&](auto zero) {
    using T = decltype(zero);
    cpu::gelu_backward<T>(dinp.data<T>(), dout.data<T>(), inp.data<T>(), inp.numel());
  });
}

void swiglu_forward(const Tensor& out, const Tensor& gate, const Tensor& up) {
  ZT_OP_SCOPE("swiglu_forward", gate);
  check_matches(up, gate, gate.shape(), "swiglu_forward", "up");
  check_matches(out, gate, gate.shape(), "swiglu_forward", "out");
#if ZT_HAS_CUDA
  if (gate.device().is_cuda()) {
    cuda::dispatch_float(gate, "swiglu_forward", [&](auto zero) {
      using T = decltype(zero);
      cuda::swiglu_forward<T>(cuda::ptr<T>(out), cuda::ptr<T>(gate), cuda::ptr<T>(up), gate.numel());
    });
    return;
  }
#endif
  kernels::dispatch_cpu_float(gate, "swiglu_forward", [&](auto zero) {
    using T = decltype(zero);
    cpu::swiglu_forward<T>(out.data<T>(), gate.data<T>(), up.data<T>(), gate.numel());
  });
}

void swiglu_backward(const Tensor& dgate, const Tensor& dup, const Tensor& dout, const Tensor& gate, const Tensor& up) {
  ZT_OP_SCOPE("swiglu_backward", gate);
  for (const auto& [t, name] : {std::pair{&dgate, "dgate"}, {&dup, "dup"}, {&dout, "dout"}, {&up, "up"}})
    check_matches(*t, gate, gate.shape(), "swiglu_backward", name);
#if ZT_HAS_CUDA
  if (gate.device().is_cuda()) {
    cuda::dispatch_float(gate, "swiglu_backward", [&](auto zero) {
      using T = decltype(zero);
      cuda::swiglu_backward<T>(cuda::ptr<T>(dgate), cuda::ptr<T>(dup), cuda::ptr<T>(dout), cuda::ptr<T>(gate),
                              cuda::ptr<T>(up), gate.numel());
    });
    return;
  }
#endif
  kernels::dispatch_cpu_float(gate, "swiglu_backward", [&](auto zero) {
    using T = decltype(zero);
    cpu::swiglu_backward<T>(dgate.data<T>(), dup.data<T>(), dout.data<T>(), gate.data<T>(), up.data<T>(),
                            gate.numel());
  });
}

}  // namespace zt::ops
