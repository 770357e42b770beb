// UTF-8 helpers for the tokenizers: validation, lossy repair and encoding of code points.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace zt::io {

// Length in bytes of the valid UTF-8 sequence starting at s[i], or 0 if none starts there
// (overlong forms, surrogates and code points past U+10FFFF are invalid).
size_t utf8_valid_length(std::string_view s, size_t i);

// The offset of the first byte that is not part of valid UTF-8, or s.size() when s is valid.
size_t utf8_first_invalid(std::string_view s);

// s with every maximal invalid subsequence replaced by U+FFFD, as Rust's
// String::from_utf8_lossy and Python's bytes.decode(errors="replace") do.
std::string utf8_lossy(std::string_view s);

void utf8_append(std::string& out, uint32_t code_point);

// Decodes the code point at s[i] (which must be valid) and advances i past it.
uint32_t utf8_next(std::string_view s, size_t& i);

}  // namespace zt::io
