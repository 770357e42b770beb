#include <utility>

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

namespace {

// The hidden size H of gate_up (..., 2H) and its row count, after checking that it is packed.
std::pair<int64_t, int64_t> swiglu_rows(const Tensor& gate_up, const char* op) {
  ZT_CHECK(gate_up.dim() >= 1 && gate_up.size(-1) % 2 == 0, op, ": gate_up must end in an even dimension (gate, up), got ",
           gate_up.describe());
  const int64_t hidden = gate_up.size(-1) / 2;
  return {hidden == 0 ? 0 : gate_up.numel() / (2 * hidden), hidden};
}

Shape half_width(const Tensor& gate_up) {
  Shape s = gate_up.shape();
  s.back() /= 2;
  return s;
}

}  // namespace

void swiglu_forward(const Tensor& out, const Tensor& gate_up) {
  ZT_OP_SCOPE("swiglu_forward", gate_up);
  const auto [rows, hidden] = swiglu_rows(gate_up, "swiglu_forward");
  check_matches(out, gate_up, half_width(gate_up), "swiglu_forward", "out");
#if ZT_HAS_CUDA
  if (gate_up.device().is_cuda()) {
    cuda::dispatch_float(gate_up, "swiglu_forward", [&](auto zero) {
      using T = decltype(zero);
      cuda::swiglu_forward<T>(cuda::ptr<T>(out), cuda::ptr<T>(gate_up), rows, hidden);
    });
    return;
  }
#endif
  kernels::dispatch_cpu_float(gate_up, "swiglu_forward", [&](auto zero) {
    using T = decltype(zero);
    cpu::swiglu_forward<T>(out.data<T>(), gate_up.data<T>(), rows, hidden);
  });
}

void swiglu_backward(const Tensor& dgate_up, const Tensor& dout, const Tensor& gate_up) {
  ZT_OP_SCOPE("swiglu_backward", gate_up);
  const auto [rows, hidden] = swiglu_rows(gate_up, "swiglu_backward");
  check_matches(dgate_up, gate_up, gate_up.shape(), "swiglu_backward", "dgate_up");
  check_matches(dout, gate_up, half_width(gate_up), "swiglu_backward", "dout");
#if ZT_HAS_CUDA
  if (gate_up.device().is_cuda()) {
    cuda::dispatch_float(gate_up, "swiglu_backward", [&](auto zero) {
      using T = decltype(zero);
      cuda::swiglu_backward<T>(cuda::ptr<T>(dgate_up), cuda::ptr<T>(dout), cuda::ptr<T>(gate_up), rows, hidden);
    });
    return;
  }
#endif
  kernels::dispatch_cpu_float(gate_up, "swiglu_backward", [&](auto zero) {
    using T = decltype(zero);
    cpu::swiglu_backward<T>(dgate_up.data<T>(), dout.data<T>(), gate_up.data<T>(), rows, hidden);
  });
}

}  // namespace zt::ops
