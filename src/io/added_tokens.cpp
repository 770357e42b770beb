#include "io/added_tokens.hpp"

#include <algorithm>

namespace zt::io {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

// Letters, digits and '_' continue a word; bytes of multi-byte characters count as word
// characters (most are letters), which keeps single_word tokens out of non-ASCII words.
bool is_word_byte(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u >= 0x80 || (u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || u == '_';
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(const std::vector<AddedToken>& tokens) {
  for (const AddedToken& t : tokens) {
    if (!t.content.empty()) tokens_.push_back(t);
  }
  std::stable_sort(tokens_.begin(), tokens_.end(),
                   [](const AddedToken& a, const AddedToken& b) { return a.content.size() > b.content.size(); });
  for (uint32_t i = 0; i < tokens_.size(); ++i) {
    by_first_byte_[static_cast<unsigned char>(tokens_[i].content[0])].push_back(i);
    starts_[static_cast<unsigned char>(tokens_[i].content[0])] = true;
  }
}

void AddedTokenMatcher::split(std::string_view text, std::vector<TextSpan>& out) const {
  if (tokens_.empty()) {
    if (!text.empty()) out.push_back({text, -1});
    return;
  }
  size_t emitted = 0;  // text before this is in out
  size_t i = 0;
  while (i < text.size()) {
    if (by_first_byte_[static_cast<unsigned char>(text[i])].empty()) {
      // Skip ahead to the next byte that can start a token.
      ++i;
      while (i < text.size() && !starts_[static_cast<unsigned char>(text[i])]) ++i;
      continue;
    }
    const auto& candidates = by_first_byte_[static_cast<unsigned char>(text[i])];
    const AddedToken* hit = nullptr;
    for (uint32_t c : candidates) {
      const AddedToken& t = tokens_[c];
      if (text.compare(i, t.content.size(), t.content) == 0) {
        hit = &t;
        break;
      }
    }
    if (hit == nullptr) {
      ++i;
      continue;
    }
    size_t start = i, stop = i + hit->content.size();
    if (hit->single_word) {
      const bool word_before = start > 0 && is_word_byte(text[start - 1]);
      const bool word_after = stop < text.size() && is_word_byte(text[stop]);
      if (word_before || word_after) {
        i = stop;  // the automaton resumes after a match it discarded
        continue;
      }
    }
    if (hit->lstrip) {
      while (start > emitted && is_space(text[start - 1])) --start;
    }
    if (hit->rstrip) {
      while (stop < text.size() && is_space(text[stop])) ++stop;
    }
    if (start > emitted) out.push_back({text.substr(emitted, start - emitted), -1});
    out.push_back({text.substr(start, stop - start), hit->id});
    emitted = i = stop;
  }
  if (emitted < text.size()) out.push_back({text.substr(emitted), -1});
}

}  // namespace zt::io
