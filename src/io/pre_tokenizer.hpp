// The pre-tokenizer of a byte-level BPE tokenizer: a list of steps, each splitting every
// piece from the step before into smaller pieces (tokenizers' PreTokenizedString::split).
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/regex.hpp"

namespace zt::io {

// How a Split step treats the pattern's matches (tokenizers' SplitDelimiterBehavior).
enum class SplitBehavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };

struct PreTokenizerStep {
  std::unique_ptr<Regex> regex;  // null: the step keeps each piece whole
  SplitBehavior behavior = SplitBehavior::isolated;
  bool invert = false;
  bool add_prefix_space = false;  // ByteLevel: a piece not starting with ' ' gets one
};

// A piece of text: a view into the caller's text or into the scratch storage.
using Piece = std::string_view;

class PreTokenizer {
 public:
  // Parses tokenizer.json's "pre_tokenizer" (null, ByteLevel, Split, Digits, Sequence of these).
  // byte_level is set when a ByteLevel step is present. origin names the file in errors.
  static PreTokenizer from_json(const nlohmann::json& j, const std::string& origin, bool& byte_level);

  // Splits text into pieces. scratch holds any text the steps create (prefix spaces); the
  // pieces stay valid while scratch and text live. pieces is cleared first.
  void split(std::string_view text, std::vector<Piece>& pieces, std::deque<std::string>& scratch) const;

  std::vector<PreTokenizerStep> steps;
};

// GPT-2's pre-tokenizer pattern, used by ByteLevel when use_regex is true.
extern const char* const kGpt2Pattern;

}  // namespace zt::io
