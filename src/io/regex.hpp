// A PCRE2 regular expression in UTF mode with Unicode properties (\p{L}, \s as Unicode
// spaces), JIT-compiled: the engine for the tokenizers' pre-tokenizer patterns, which are
// written for Oniguruma/fancy-regex and use lookahead, so std::regex cannot run them.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace zt::io {

class Regex {
 public:
  // literal: match pattern as a plain string. zt::Error with PCRE2's message and the offset
  // in the pattern when it does not compile; origin names where the pattern came from.
  Regex(const std::string& pattern, bool literal, const std::string& origin);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Appends the [begin, end) byte ranges of every non-empty, non-overlapping match in
  // subject, left to right. subject must be valid UTF-8 (it is not checked again here).
  void find_all(std::string_view subject, std::vector<std::pair<size_t, size_t>>& out) const;
  const std::string& pattern() const { return pattern_; }

 private:
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8*
  bool jit_ = false;
};

}  // namespace zt::io
