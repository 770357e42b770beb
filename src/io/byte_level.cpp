#include "io/byte_level.hpp"

#include <array>

#include "io/utf8.hpp"

namespace zt::io {
namespace {

struct Tables {
  std::array<uint32_t, 256> to_cp{};
  std::array<int16_t, 512> to_byte{};  // every mapped code point is below 0x144
  Tables() {
    to_byte.fill(-1);
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
      to_cp[b] = printable ? uint32_t(b) : next++;
      to_byte[to_cp[b]] = int16_t(b);
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

}  // namespace

uint32_t byte_level_code_point(uint8_t byte) { return tables().to_cp[byte]; }

std::optional<uint8_t> byte_level_byte(uint32_t cp) {
  if (cp >= 512 || tables().to_byte[cp] < 0) return std::nullopt;
  return uint8_t(tables().to_byte[cp]);
}

std::string byte_level_encode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) utf8_append(out, byte_level_code_point(static_cast<uint8_t>(c)));
  return out;
}

std::optional<std::string> byte_level_decode(std::string_view token) {
  std::string out;
  out.reserve(token.size());
  size_t i = 0;
  while (i < token.size()) {
    if (utf8_valid_length(token, i) == 0) return std::nullopt;
    const auto b = byte_level_byte(utf8_next(token, i));
    if (!b) return std::nullopt;
    out += char(*b);
  }
  return out;
}

}  // namespace zt::io
