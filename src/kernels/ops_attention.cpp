#include "zt/core/op_profile.hpp"
#include "cpu/cpu_ops.hpp"
#include "dispatch.hpp"
#if ZT_HAS_CUDA
#include "cuda/cuda_ops.hpp"
#endif

namespace zt::ops {

using kernels::check_matches;

namespace {
struct AttentionDims {
  int64_t b, t, hd;
};

AttentionDims attention_dims(const Tensor& qkv, int64_t n_head, int64_t n_kv_head, const char* op) {
  ZT_CHECK(n_head > 0 && n_kv_head > 0 && n_head % n_kv_head == 0, op, ": n_head ", n_head,
           " must be a positive multiple of n_kv_head ", n_kv_head);
  ZT_CHECK(qkv.dim() == 3, op, ": qkv must be (B, T, (NH + 2*NKV) * HD), got ", qkv.describe());
  const int64_t width = qkv.size(2), heads = n_head + 2 * n_kv_head;
  ZT_CHECK(width % heads == 0, op, ": qkv width ", width, " is not a multiple of NH + 2*NKV = ", heads);
  return {qkv.size(0), qkv.size(1), width / heads};
}
}  // namespace

Shape attention_saved_shape(Device device, int64_t batch, int64_t n_head, int64_t seq_len) {
#if ZT_HAS_CUDA
  if (device.is_cuda()) return {batch, n_head, seq_len};  // the log-sum-exp of each query row
#endif
  ZT_CHECK(device.is_cpu(), "attention: no kernel for ", device.name(), " tensors in this build");
  return {batch, n_head, seq_len, seq_len};
}

void attention_forward(const Tensor& out, const Tensor& att, const Tensor& qkv, int64_t n_head, int64_t n_kv_head) {
  ZT_OP_SCOPE("attention_forward", qkv);
  const char* op = "attention_forward";
  const auto [b, t, hd] = attention_dims(qkv, n_head, n_kv_head, op);
  check_matches(out, qkv, {b, t, n_head * hd}, op, "out");
  kernels::check_stats(att, qkv, attention_saved_shape(qkv.device(), b, n_head, t), op, "att");
#if ZT_HAS_CUDA
  if (qkv.device().is_cuda()) {
    cuda::dispatch_float(qkv, op, [&](auto zero) {
      using T = decltype(zero);
      cuda::attention_forward<T>(cuda::ptr<T>(out), att.data<float>(), cuda::ptr<T>(qkv), b, t, n_head, n_kv_head, hd);
    });
    return;
  }
#endif
  kernels::dispatch_cpu_float(qkv, op, [&](auto zero) {
    using T = decltype(zero);
    cpu::attention_forward<T>(out.data<T>(), att.data<T>(), qkv.data<T>(), b, t, n_head, n_kv_head, hd);
  });
}

namespace {
void rope(const Tensor& x, const Tensor& inv_freq, int64_t n_rotated_heads, int64_t position_offset, bool inverse,
          const char* op, const char* arg) {
  ZT_OP_SCOPE("rope", x);
  ZT_CHECK(x.dim() == 4, op, ": ", arg, " must be (B, T, heads, HD), got ", x.describe());
  const int64_t hd = x.size(3);
  ZT_CHECK(hd % 2 == 0, op, ": head size ", hd, " must be even");
  ZT_CHECK(n_rotated_heads >= 0 && n_rotated_heads <= x.size(2), op, ": n_rotated_heads ", n_rotated_heads,
           " out of range for ", x.size(2), " heads");
  kernels::check_stats(inv_freq, x, {hd / 2}, op, "inv_freq");
#if ZT_HAS_CUDA
  if (x.device().is_cuda()) {
    cuda::dispatch_float(x, op, [&](auto zero) {
      using T = decltype(zero);
      cuda::rope_apply<T>(cuda::ptr<T>(x), inv_freq.data<float>(), x.size(0), x.size(1), x.size(2), n_rotated_heads, hd,
                          position_offset, inverse);
    });
    return;
  }
#endif
  kernels::dispatch_cpu_float(x, op, [&](auto zero) {
    using T = decltype(zero);
    cpu::rope_apply<T>(x.data<T>(), inv_freq.data<T>(), x.size(0), x.size(1), x.size(2), n_rotated_heads, hd,
                       position_offset, inverse);
  });
}
}  // namespace

void attention_backward(const Tensor& dqkv, const Tensor& dout, const Tensor& qkv, const Tensor& out, const Tensor& att,
                        int64_t n_head, int64_t n_kv_head, const RotaryPositions* rotary) {
  ZT_OP_SCOPE("attention_backward", qkv);
  const char* op = "attention_backward";
  const auto [b, t, hd] = attention_dims(qkv, n_head, n_kv_head, op);
  check_matches(dqkv, qkv, qkv.shape(), op, "dqkv");
  check_matches(dout, qkv, {b, t, n_head * hd}, op, "dout");
  check_matches(out, qkv, {b, t, n_head * hd}, op, "out");
  kernels::check_stats(att, qkv, attention_saved_shape(qkv.device(), b, n_head, t), op, "att");
  if (rotary) kernels::check_stats(rotary->inv_freq, qkv, {hd / 2}, op, "rotary inv_freq");
#if ZT_HAS_CUDA
  if (qkv.device().is_cuda()) {
    cuda::dispatch_float(qkv, op, [&](auto zero) {
      using T = decltype(zero);
      const cuda::RotaryGradient rotated =
          rotary ? cuda::RotaryGradient{rotary->inv_freq.data<float>(), rotary->position_offset} : cuda::RotaryGradient{};
      cuda::attention_backward<T>(cuda::ptr<T>(dqkv), cuda::ptr<T>(dout), cuda::ptr<T>(qkv), cuda::ptr<T>(out),
                                  att.data<float>(), b, t, n_head, n_kv_head, hd, rotated);
    });
    return;
  }
#endif
  kernels::dispatch_cpu_float(qkv, op, [&](auto zero) {
    using T = decltype(zero);
    cpu::attention_backward<T>(dqkv.data<T>(), dout.data<T>(), qkv.data<T>(), out.data<T>(), att.data<T>(), b, t,
                               n_head, n_kv_head, hd);
  });
  if (rotary) {
    rope(dqkv.reshape({b, t, n_head + 2 * n_kv_head, hd}), rotary->inv_freq, n_head + n_kv_head,
         rotary->position_offset, true, op, "dqkv");
  }
}

void rope_forward(const Tensor& x, const Tensor& inv_freq, int64_t n_rotated_heads, int64_t position_offset) {
  rope(x, inv_freq, n_rotated_heads, position_offset, false, "rope_forward", "x");
}

void rope_backward(const Tensor& dx, const Tensor& inv_freq, int64_t n_rotated_heads, int64_t position_offset) {
  rope(dx, inv_freq, n_rotated_heads, position_offset, true, "rope_backward", "dx");
}

}  // namespace zt::ops
