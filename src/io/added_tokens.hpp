// Added tokens (special or not) are found in the text before anything else, so that
// "<|endoftext|>" in a document is one id and never the BPE of its characters.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace zt::io {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;
  bool single_word = false;  // only where not inside a word
  bool lstrip = false;       // swallows the whitespace before it
  bool rstrip = false;       // swallows the whitespace after it
  bool normalized = false;   // matched after normalization (the same text here: no normalizer)
};

// A span of text: an added token's id, or -1 for text to pre-tokenize.
struct TextSpan {
  std::string_view text;
  int32_t id = -1;
};

class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  explicit AddedTokenMatcher(const std::vector<AddedToken>& tokens);

  // Splits text into plain spans and token spans, matching leftmost-longest as the
  // Aho-Corasick automaton in tokenizers does. Appends to out.
  void split(std::string_view text, std::vector<TextSpan>& out) const;
  bool empty() const { return tokens_.empty(); }

 private:
  std::vector<AddedToken> tokens_;  // longest first, so the first hit at a position is the longest
  std::vector<std::vector<uint32_t>> by_first_byte_ = std::vector<std::vector<uint32_t>>(256);
  std::array<bool, 256> starts_{};  // bytes that begin some token
};

}  // namespace zt::io
