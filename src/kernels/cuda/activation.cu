// GELU (tanh form), SwiGLU and the rotary embedding: elementwise, in f32 arithmetic.
#include "common.cuh"

namespace zt::cuda {

namespace {

#define ZT_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

template <class T>
__global__ void gelu_forward_kernel(T* out, const T* inp, int64_t n) {
  ZT_GRID_STRIDE(i, n) out[i] = from_float<T>(gelu_value(to_float(inp[i])));
}

template <class T>
__global__ void gelu_backward_kernel(T* dinp, const T* dout, const T* inp, int64_t n) {
  ZT_GRID_STRIDE(i, n) dinp[i] = from_float<T>(gelu_derivative(to_float(inp[i])) * to_float(dout[i]));
}

template <class T>
__global__ void swiglu_forward_kernel(T* out, const T* gate, const T* up, int64_t n) {
  ZT_GRID_STRIDE(i, n) {
    const float g = to_float(gate[i]);
    out[i] = from_float<T>(g / (1.0f + expf(-g)) * to_float(up[i]));
  }
}

template <class T>
__global__ void swiglu_backward_kernel(T* dgate, T* dup, const T* dout, const T* gate, const T* up, int64_t n) {
  ZT_GRID_STRIDE(i, n) {
    const float g = to_float(gate[i]), dy = to_float(dout[i]);
    const float sig = 1.0f / (1.0f + expf(-g));
    dup[i] = from_float<T>(dy * g * sig);
    dgate[i] = from_float<T>(dy * to_float(up[i]) * sig * (1.0f + g * (1.0f - sig)));
  }
}

// x (B*T, heads, HD): one thread per (token, rotated head, i < HD/2) pair of elements.
template <class T>
__global__ void rope_kernel(T* x, const float* inv_freq, int64_t rows, int64_t t, int64_t n_heads, int64_t n_rotated,
                            int64_t hd, int64_t position_offset, float sign) {
  const int64_t half = hd / 2, total = rows * n_rotated * half;
  ZT_GRID_STRIDE(idx, total) {
    const int64_t i = idx % half, h = (idx / half) % n_rotated, row = idx / (half * n_rotated);
    const float angle = float(position_offset + row % t) * inv_freq[i];
    float s, c;
    sincosf(angle, &s, &c);
    s *= sign;
    T* head = x + (row * n_heads + h) * hd;
    const float x1 = to_float(head[i]), x2 = to_float(head[i + half]);
    head[i] = from_float<T>(x1 * c - x2 * s);
    head[i + half] = from_float<T>(x2 * c + x1 * s);
  }
}

}  // namespace

template <class T>
void gelu_forward(T* out, const T* inp, int64_t n) {
  if (n == 0) return;
  gelu_forward_kernel<<<grid_size(n, 256), 256, 0, compute_stream()>>>(out, inp, n);
  ZT_CUDA_CHECK_LAUNCH("gelu_forward_kernel");
}

template <class T>
void gelu_backward(T* dinp, const T* dout, const T* inp, int64_t n) {
  if (n == 0) return;
  gelu_backward_kernel<<<grid_size(n, 256), 256, 0, compute_stream()>>>(dinp, dout, inp, n);
  ZT_CUDA_CHECK_LAUNCH("gelu_backward_kernel");
}

template <class T>
void swiglu_forward(T* out, const T* gate, const T* up, int64_t n) {
  if (n == 0) return;
  swiglu_forward_kernel<<<grid_size(n, 256), 256, 0, compute_stream()>>>(out, gate, up, n);
  ZT_CUDA_CHECK_LAUNCH("swiglu_forward_kernel");
}

template <class T>
void swiglu_backward(T* dgate, T* dup, const T* dout, const T* gate, const T* up, int64_t n) {
  if (n == 0) return;
  swiglu_backward_kernel<<<grid_size(n, 256), 256, 0, compute_stream()>>>(dgate, dup, dout, gate, up, n);
  ZT_CUDA_CHECK_LAUNCH("swiglu_backward_kernel");
}

template <class T>
void rope_apply(T* x, const float* inv_freq, int64_t b, int64_t t, int64_t n_heads, int64_t n_rotated, int64_t hd,
                int64_t position_offset, bool inverse) {
  const int64_t total = b * t * n_rotated * (hd / 2);
  if (total == 0) return;
  rope_kernel<<<grid_size(total, 256), 256, 0, compute_stream()>>>(x, inv_freq, b * t, t, n_heads, n_rotated, hd,
                                                                   position_offset, inverse ? -1.0f : 1.0f);
  ZT_CUDA_CHECK_LAUNCH("rope_kernel");
}

#define ZT_INSTANTIATE(T)                                                                                \
  template void gelu_forward<T>(T*, const T*, int64_t);                                                  \
  template void gelu_backward<T>(T*, const T*, const T*, int64_t);                                       \
  template void swiglu_forward<T>(T*, const T*, const T*, int64_t);                                      \
  template void swiglu_backward<T>(T*, T*, const T*, const T*, const T*, int64_t);                       \
  template void rope_apply<T>(T*, const float*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool);
ZT_INSTANTIATE(float)
ZT_INSTANTIATE(bf16)
#undef ZT_INSTANTIATE

}  // namespace zt::cuda
