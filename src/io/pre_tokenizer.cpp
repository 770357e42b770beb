#include "io/pre_tokenizer.hpp"

#include <algorithm>

#include "zt/core/error.hpp"

namespace zt::io {

const char* const kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace {

using Range = std::pair<size_t, size_t>;

SplitBehavior parse_behavior(const nlohmann::json& j, const std::string& where) {
  ZT_CHECK(j.is_string(), where, ": \"behavior\" is ", j.dump(), "; expected a string such as \"Isolated\"");
  const std::string b = j.get<std::string>();
  if (b == "Removed") return SplitBehavior::removed;
  if (b == "Isolated") return SplitBehavior::isolated;
  if (b == "MergedWithPrevious") return SplitBehavior::merged_with_previous;
  if (b == "MergedWithNext") return SplitBehavior::merged_with_next;
  if (b == "Contiguous") return SplitBehavior::contiguous;
  ZT_THROW(where, ": unknown split behavior \"", b,
           "\" (expected Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous)");
}

bool get_bool(const nlohmann::json& j, const char* key, bool fallback, const std::string& where) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  ZT_CHECK(j[key].is_boolean(), where, ": \"", key, "\" is ", j[key].dump(), "; expected true or false");
  return j[key].get<bool>();
}

void add_steps(const nlohmann::json& j, const std::string& where, std::vector<PreTokenizerStep>& steps,
               bool& byte_level) {
  if (j.is_null()) return;
  ZT_CHECK(j.is_object() && j.contains("type") && j["type"].is_string(), where,
           ": expected an object with a \"type\", found ", j.dump().substr(0, 200));
  const std::string type = j["type"].get<std::string>();
  const std::string here = where + " (" + type + ")";
  if (type == "Sequence") {
    ZT_CHECK(j.contains("pretokenizers") && j["pretokenizers"].is_array(), here, ": no \"pretokenizers\" array");
    for (size_t i = 0; i < j["pretokenizers"].size(); ++i) {
      add_steps(j["pretokenizers"][i], where + ".pretokenizers[" + std::to_string(i) + "]", steps, byte_level);
    }
  } else if (type == "ByteLevel") {
    byte_level = true;
    PreTokenizerStep step;
    step.add_prefix_space = get_bool(j, "add_prefix_space", true, here);
    if (get_bool(j, "use_regex", true, here)) step.regex = std::make_unique<Regex>(kGpt2Pattern, false, here);
    steps.push_back(std::move(step));
  } else if (type == "Split") {
    ZT_CHECK(j.contains("pattern") && j["pattern"].is_object(), here,
             ": \"pattern\" must be {\"Regex\": ...} or {\"String\": ...}");
    const auto& p = j["pattern"];
    PreTokenizerStep step;
    if (p.contains("Regex") && p["Regex"].is_string()) {
      step.regex = std::make_unique<Regex>(p["Regex"].get<std::string>(), false, here);
    } else if (p.contains("String") && p["String"].is_string()) {
      step.regex = std::make_unique<Regex>(p["String"].get<std::string>(), true, here);
    } else {
      ZT_THROW(here, ": \"pattern\" is ", p.dump(), "; expected {\"Regex\": \"...\"} or {\"String\": \"...\"}");
    }
    ZT_CHECK(j.contains("behavior"), here, ": no \"behavior\"");
    step.behavior = parse_behavior(j["behavior"], here);
    step.invert = get_bool(j, "invert", false, here);
    steps.push_back(std::move(step));
  } else if (type == "Digits") {
    PreTokenizerStep step;
    const bool individual = get_bool(j, "individual_digits", false, here);
    step.regex = std::make_unique<Regex>(individual ? R"(\p{N})" : R"(\p{N}+)", false, here);
    step.behavior = SplitBehavior::isolated;
    steps.push_back(std::move(step));
  } else {
    ZT_THROW(here, ": pre-tokenizer type \"", type,
             "\" is not supported for byte-level BPE (supported: ByteLevel, Split, Digits, Sequence)");
  }
}

// Turns the matches of one piece into the pieces a behavior keeps (tokenizers'
// NormalizedString::split). segments alternate between gaps and matches, in order.
void apply_behavior(const std::vector<std::pair<Range, bool>>& segments, SplitBehavior behavior,
                    std::vector<Range>& out) {
  const size_t first = out.size();
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::removed:
      for (const auto& [r, m] : segments) {
        if (!m) out.push_back(r);
      }
      break;
    case SplitBehavior::isolated:
      for (const auto& [r, m] : segments) out.push_back(r);
      break;
    case SplitBehavior::merged_with_previous:
      for (const auto& [r, m] : segments) {
        if (m && !previous_match && out.size() > first) {
          out.back().second = r.second;
        } else {
          out.push_back(r);
        }
        previous_match = m;
      }
      break;
    case SplitBehavior::merged_with_next:
      // Mirror image of merged_with_previous: walk backwards, then restore the order.
      for (size_t k = segments.size(); k-- > 0;) {
        const auto& [r, m] = segments[k];
        if (m && !previous_match && out.size() > first) {
          out.back().first = r.first;
        } else {
          out.push_back(r);
        }
        previous_match = m;
      }
      std::reverse(out.begin() + std::ptrdiff_t(first), out.end());
      break;
    case SplitBehavior::contiguous:
      for (const auto& [r, m] : segments) {
        if (m == previous_match && out.size() > first) {
          out.back().second = r.second;
        } else {
          out.push_back(r);
        }
        previous_match = m;
      }
      break;
  }
}

}  // namespace

PreTokenizer PreTokenizer::from_json(const nlohmann::json& j, const std::string& origin, bool& byte_level) {
  PreTokenizer p;
  add_steps(j, origin + ": pre_tokenizer", p.steps, byte_level);
  return p;
}

void PreTokenizer::split(std::string_view text, std::vector<Piece>& pieces, std::deque<std::string>& scratch) const {
  pieces.clear();
  if (text.empty()) return;
  pieces.push_back(text);
  std::vector<Piece> next;
  std::vector<Range> matches, kept;
  std::vector<std::pair<Range, bool>> segments;
  for (const PreTokenizerStep& step : steps) {
    next.clear();
    for (Piece piece : pieces) {
      if (step.add_prefix_space && piece.front() != ' ') {
        std::string& spaced = scratch.emplace_back();
        spaced.reserve(piece.size() + 1);
        spaced += ' ';
        spaced += piece;
        piece = spaced;
      }
      if (!step.regex) {
        next.push_back(piece);
        continue;
      }
      matches.clear();
      step.regex->find_all(piece, matches);
      segments.clear();
      size_t prev = 0;
      for (const Range& m : matches) {
        if (m.first > prev) segments.push_back({{prev, m.first}, step.invert});
        segments.push_back({m, !step.invert});
        prev = m.second;
      }
      if (prev < piece.size()) segments.push_back({{prev, piece.size()}, step.invert});
      kept.clear();
      apply_behavior(segments, step.behavior, kept);
      for (const Range& r : kept) {
        if (r.second > r.first) next.push_back(piece.substr(r.first, r.second - r.first));
      }
    }
    pieces.swap(next);
  }
}

}  // namespace zt::io
