// Element types and their host-side conversions. bf16 and f16 are stored as raw uint16_t bits;
// conversions round to nearest even, as CUDA's intrinsics and PyTorch do.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace zt {

enum class DType : uint8_t { f32, f64, bf16, f16, i64, i32, i8, u8, b8 };

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);  // "f32", "bf16", ...
// Parses our names and the safetensors ones ("F32", "BF16", "I64", "BOOL", ...).
DType dtype_from_name(const std::string& name);
bool dtype_is_float(DType dtype);

// Maps a C++ element type to its DType, so that Tensor::data<T>() can check it.
template <class T> struct DTypeOf;
template <> struct DTypeOf<float> { static constexpr DType value = DType::f32; };
template <> struct DTypeOf<double> { static constexpr DType value = DType::f64; };
template <> struct DTypeOf<int64_t> { static constexpr DType value = DType::i64; };
template <> struct DTypeOf<int32_t> { static constexpr DType value = DType::i32; };
template <> struct DTypeOf<int8_t> { static constexpr DType value = DType::i8; };
template <> struct DTypeOf<uint8_t> { static constexpr DType value = DType::u8; };

inline float bf16_to_float(uint16_t bits) {
  uint32_t u = uint32_t(bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

inline uint16_t float_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // NaN stays NaN (quiet)
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
  return uint16_t(u >> 16);
}

float f16_to_float(uint16_t bits);
uint16_t float_to_f16(float f);

}  // namespace zt
