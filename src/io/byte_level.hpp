// GPT-2's byte-level alphabet: every byte maps to a printable code point (printable ASCII and
// Latin-1 map to themselves; the rest, space and control bytes included, to U+0100 onwards),
// so that any byte string is a string of "characters" a vocabulary can hold ("Ġ" is a space).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace zt::io {

uint32_t byte_level_code_point(uint8_t byte);
// The byte a code point stands for, if it is in the alphabet.
std::optional<uint8_t> byte_level_byte(uint32_t code_point);

// Raw bytes to the byte-level string (UTF-8 of the mapped code points).
std::string byte_level_encode(std::string_view bytes);
// A byte-level token back to its raw bytes; nullopt if some character is not in the alphabet
// (such a token decodes as its own UTF-8, as tokenizers' ByteLevel decoder does).
std::optional<std::string> byte_level_decode(std::string_view token);

}  // namespace zt::io
