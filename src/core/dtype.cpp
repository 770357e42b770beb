#include "zt/core/dtype.hpp"

#include "zt/core/error.hpp"

namespace zt {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::f64: case DType::i64: return 8;
    case DType::f32: case DType::i32: return 4;
    case DType::bf16: case DType::f16: return 2;
    case DType::i8: case DType::u8: case DType::b8: return 1;
  }
  ZT_THROW("unknown dtype code ", int(dtype));
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::bf16: return "bf16";
    case DType::f16: return "f16";
    case DType::i64: return "i64";
    case DType::i32: return "i32";
    case DType::i8: return "i8";
    case DType::u8: return "u8";
    case DType::b8: return "bool";
  }
  return "?";
}

DType dtype_from_name(const std::string& name) {
  struct Entry { const char* ours; const char* safetensors; DType dtype; };
  static const Entry table[] = {
      {"f32", "F32", DType::f32},  {"f64", "F64", DType::f64}, {"bf16", "BF16", DType::bf16},
      {"f16", "F16", DType::f16},  {"i64", "I64", DType::i64}, {"i32", "I32", DType::i32},
      {"i8", "I8", DType::i8},     {"u8", "U8", DType::u8},    {"bool", "BOOL", DType::b8},
  };
  for (const Entry& e : table) {
    if (name == e.ours || name == e.safetensors) return e.dtype;
  }
  ZT_THROW("unknown dtype '", name, "' (expected one of f32, f64, bf16, f16, i64, i32, i8, u8, bool)");
}

bool dtype_is_float(DType dtype) {
  return dtype == DType::f32 || dtype == DType::f64 || dtype == DType::bf16 || dtype == DType::f16;
}

float f16_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;
  uint32_t bits;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);  // inf or nan
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign;  // signed zero
  } else {
    // subnormal: renormalize
    exponent = 113;
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      --exponent;
    }
    bits = sign | (exponent << 23) | ((mantissa & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

uint16_t float_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  const uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  const uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return uint16_t(sign | 0x7e00u);         // nan
  if (abs >= 0x477ff000u) return uint16_t(sign | 0x7c00u);        // overflow (after rounding) to inf
  if (abs < 0x38800000u) {                                        // below the smallest normal: subnormal
    if (abs < 0x33000000u) return sign;                           // rounds to zero
    const uint32_t exponent = abs >> 23;
    const uint32_t mantissa = (abs & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - exponent;                        // 14..24
    uint32_t half = mantissa >> shift;
    const uint32_t rest = mantissa & ((1u << shift) - 1);
    const uint32_t halfway = 1u << (shift - 1);
    if (rest > halfway || (rest == halfway && (half & 1u))) ++half;
    return uint16_t(sign | half);
  }
  uint32_t bits = abs - 0x38000000u;  // rebias exponent 127 -> 15
  bits += 0xfffu + ((bits >> 13) & 1u);
  return uint16_t(sign | uint16_t(bits >> 13));
}

}  // namespace zt
