// GELU (tanh form) and SwiGLU: elementwise, in f32 arithmetic, through elementwise_map (16 bytes a
// thread). The rotary embedding is rope.cu.
#include "common.cuh"
#include "elementwise_map.cuh"

namespace zt::cuda {

namespace {

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

#define ZT_INSTANTIATE(T)                                                                                \
  template void gelu_forward<T>(T*, const T*, int64_t);                                                  \
  template void gelu_backward<T>(T*, const T*, const T*, int64_t);                                       \
  template void swiglu_forward<T>(T*, const T*, int64_t, int64_t);                                      \
  template void swiglu_backward<T>(T*, const T*, const T*, int64_t, int64_t);
ZT_INSTANTIATE(float)
ZT_INSTANTIATE(bf16)
#undef ZT_INSTANTIATE

}  // namespace zt::cuda
