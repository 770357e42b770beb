// GELU (tanh form), SwiGLU and the rotary embedding: elementwise, in f32 arithmetic (the first
// two through elementwise_map, 16 bytes a thread).
#include "common.cuh"
#include "elementwise_map.cuh"

namespace zt::cuda {

namespace {

#define ZT_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

struct GeluForward {
  __device__ void operator()(const float (&x)[1], float (&y)[1]) const { y[0] = gelu_value(x[0]); }
};
struct GeluBackward {  // x: dout, inp
  __device__ void operator()(const float (&x)[2], float (&y)[1]) const { y[0] = gelu_derivative(x[1]) * x[0]; }
};
struct SwigluForward {  // x: gate, up
  __device__ void operator()(const float (&x)[2], float (&y)[1]) const { y[0] = x[0] / (1.0f + expf(-x[0])) * x[1]; }
};
struct SwigluBackward {  // x: dout, gate, up; y: dgate, dup
  __device__ void operator()(const float (&x)[3], float (&y)[2]) const {
    const float dy = x[0], g = x[1];
    const float sig = 1.0f / (1.0f + expf(-g));
    y[0] = dy * x[2] * sig * (1.0f + g * (1.0f - sig));
    y[1] = dy * g * sig;
  }
};

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

// Two adjacent elements of T, moved as one 4- or 8-byte access.
template <class T> struct Pair2;
template <> struct Pair2<bf16> { using type = __nv_bfloat162; };
template <> struct Pair2<float> { using type = float2; };

// The same rotation with each angle's sine and cosine computed once for all the rotated heads of a
// token: a thread takes elements (2p, 2p + 1) of the first half and their partners in the second
// half, in one token, and walks the heads. The angles are the same floats as above (so are the
// results); the sin/cos work is divided by the rotated heads, and the accesses are pairs.
template <class T>
__global__ void rope_pairs_kernel(T* x, const float* inv_freq, int64_t rows, int64_t t, int64_t n_heads,
                                  int64_t n_rotated, int64_t hd, int64_t position_offset, float sign) {
  using P = typename Pair2<T>::type;
  const int64_t half = hd / 2, pairs = half / 2, total = rows * pairs;
  ZT_GRID_STRIDE(idx, total) {
    const int64_t p = idx % pairs, row = idx / pairs, i = 2 * p;
    const float position = float(position_offset + row % t);
    float s0, c0, s1, c1;
    sincosf(position * inv_freq[i], &s0, &c0);
    sincosf(position * inv_freq[i + 1], &s1, &c1);
    s0 *= sign, s1 *= sign;
    T* token = x + row * n_heads * hd;
    for (int64_t h = 0; h < n_rotated; ++h) {
      P* lo = reinterpret_cast<P*>(token + h * hd + i);
      P* hi = reinterpret_cast<P*>(token + h * hd + i + half);
      const P a = *lo, b = *hi;
      const float a0 = to_float(a.x), a1 = to_float(a.y), b0 = to_float(b.x), b1 = to_float(b.y);
      P out_lo, out_hi;
      out_lo.x = from_float<T>(a0 * c0 - b0 * s0), out_lo.y = from_float<T>(a1 * c1 - b1 * s1);
      out_hi.x = from_float<T>(b0 * c0 + a0 * s0), out_hi.y = from_float<T>(b1 * c1 + a1 * s1);
      *lo = out_lo, *hi = out_hi;
    }
  }
}

}  // namespace

template <class T>
void gelu_forward(T* out, const T* inp, int64_t n) {
  elementwise_map<T, 1, 1>("gelu_forward", {{out}}, {{inp}}, n, GeluForward());
}

template <class T>
void gelu_backward(T* dinp, const T* dout, const T* inp, int64_t n) {
  elementwise_map<T, 2, 1>("gelu_backward", {{dinp}}, {{dout, inp}}, n, GeluBackward());
}

template <class T>
void swiglu_forward(T* out, const T* gate_up, int64_t rows, int64_t hidden) {
  elementwise_rows<T, 2, 1>("swiglu_forward", {{out}}, {{hidden}}, {{gate_up, gate_up + hidden}},
                            {{2 * hidden, 2 * hidden}}, rows, hidden, SwigluForward());
}

template <class T>
void swiglu_backward(T* dgate_up, const T* dout, const T* gate_up, int64_t rows, int64_t hidden) {
  elementwise_rows<T, 3, 2>("swiglu_backward", {{dgate_up, dgate_up + hidden}}, {{2 * hidden, 2 * hidden}},
                            {{dout, gate_up, gate_up + hidden}}, {{hidden, 2 * hidden, 2 * hidden}}, rows, hidden,
                            SwigluBackward());
}

template <class T>
void rope_apply(T* x, const float* inv_freq, int64_t b, int64_t t, int64_t n_heads, int64_t n_rotated, int64_t hd,
                int64_t position_offset, bool inverse) {
  const int64_t total = b * t * n_rotated * (hd / 2);
  if (total == 0) return;
  const float sign = inverse ? -1.0f : 1.0f;
  if (hd % 4 == 0 && reinterpret_cast<uintptr_t>(x) % sizeof(typename Pair2<T>::type) == 0) {
    const int64_t threads = b * t * (hd / 4);
    rope_pairs_kernel<<<grid_size(threads, 256), 256, 0, compute_stream()>>>(x, inv_freq, b * t, t, n_heads, n_rotated,
                                                                            hd, position_offset, sign);
    ZT_CUDA_CHECK_LAUNCH("rope_pairs_kernel");
    return;
  }
  rope_kernel<<<grid_size(total, 256), 256, 0, compute_stream()>>>(x, inv_freq, b * t, t, n_heads, n_rotated, hd,
                                                                   position_offset, inverse ? -1.0f : 1.0f);
  ZT_CUDA_CHECK_LAUNCH("rope_kernel");
}

#define ZT_INSTANTIATE(T)                                                                                \
  template void gelu_forward<T>(T*, const T*, int64_t);                                                  \
  template void gelu_backward<T>(T*, const T*, const T*, int64_t);                                       \
  template void swiglu_forward<T>(T*, const T*, int64_t, int64_t);                                      \
  template void swiglu_backward<T>(T*, const T*, const T*, int64_t, int64_t);                            \
  template void rope_apply<T>(T*, const float*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool);
ZT_INSTANTIATE(float)
ZT_INSTANTIATE(bf16)
#undef ZT_INSTANTIATE

}  // namespace zt::cuda
