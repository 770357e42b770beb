#include "io/utf8.hpp"

namespace zt::io {

size_t utf8_valid_length(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  const size_t n = s.size();
  const uint8_t c = b(i);
  if (c < 0x80) return 1;
  // The second byte's allowed range depends on the first (Unicode table 3-7): this rejects
  // overlong forms (E0 80..9F, F0 80..8F), surrogates (ED A0..BF) and > U+10FFFF (F4 90..).
  uint8_t lo = 0x80, hi = 0xbf;
  size_t len;
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;
  } else {
    return 0;
  }
  if (i + 1 >= n || b(i + 1) < lo || b(i + 1) > hi) return 0;
  for (size_t k = 2; k < len; ++k) {
    if (i + k >= n || (b(i + k) & 0xc0) != 0x80) return 0;
  }
  return len;
}

size_t utf8_first_invalid(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    if (static_cast<uint8_t>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const size_t len = utf8_valid_length(s, i);
    if (len == 0) return i;
    i += len;
  }
  return s.size();
}

namespace {

// Bytes of the maximal prefix of a valid sequence at s[i] (at least 1): the unit that one
// U+FFFD replaces.
size_t invalid_length(std::string_view s, size_t i) {
  const uint8_t c = static_cast<uint8_t>(s[i]);
  uint8_t lo = 0x80, hi = 0xbf;
  size_t len;
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;
  } else {
    return 1;
  }
  size_t k = 1;
  if (i + k < s.size() && static_cast<uint8_t>(s[i + k]) >= lo && static_cast<uint8_t>(s[i + k]) <= hi) {
    ++k;
    while (k < len && i + k < s.size() && (static_cast<uint8_t>(s[i + k]) & 0xc0) == 0x80) ++k;
  }
  return k;
}

}  // namespace

std::string utf8_lossy(std::string_view s) {
  size_t bad = utf8_first_invalid(s);
  if (bad == s.size()) return std::string(s);
  std::string out(s.substr(0, bad));
  size_t i = bad;
  while (i < s.size()) {
    const size_t len = utf8_valid_length(s, i);
    if (len > 0) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out += "\xef\xbf\xbd";
      i += invalid_length(s, i);
    }
  }
  return out;
}

void utf8_append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xc0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += char(0xe0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3f));
    out += char(0x80 | (cp & 0x3f));
  } else {
    out += char(0xf0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3f));
    out += char(0x80 | ((cp >> 6) & 0x3f));
    out += char(0x80 | (cp & 0x3f));
  }
}

uint32_t utf8_next(std::string_view s, size_t& i) {
  const uint8_t c = static_cast<uint8_t>(s[i]);
  if (c < 0x80) {
    ++i;
    return c;
  }
  const size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
  uint32_t cp = c & (len == 2 ? 0x1f : len == 3 ? 0x0f : 0x07);
  for (size_t k = 1; k < len && i + k < s.size(); ++k) cp = (cp << 6) | (static_cast<uint8_t>(s[i + k]) & 0x3f);
  i += len;
  return cp;
}

}  // namespace zt::io
