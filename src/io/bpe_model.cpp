#include "io/bpe_model.hpp"

#include <atomic>
#include <cstdio>
#include <memory>
#include <queue>

#include "io/byte_level.hpp"
#include "io/utf8.hpp"
#include "zt/core/error.hpp"

namespace zt::io {
namespace {

// Pieces repeat (words, indentation), so each thread remembers the ids of the pieces it has
// encoded. Bounded: cleared when full, which costs only recomputation.
constexpr size_t kCacheEntries = 1 << 16;
constexpr size_t kCacheMaxPieceBytes = 64;

// Looks pieces up by string_view, without building a std::string per lookup.
struct PieceHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

struct PieceCache {
  uint64_t instance = 0;
  std::unordered_map<std::string, std::vector<int32_t>, PieceHash, std::equal_to<>> map;
};

PieceCache& thread_cache(uint64_t instance) {
  thread_local PieceCache cache;
  if (cache.instance != instance) {
    cache.map.clear();
    cache.instance = instance;
  }
  return cache;
}

}  // namespace

BpeModel::BpeModel(std::unordered_map<std::string, int32_t> vocab,
                   const std::vector<std::pair<std::string, std::string>>& merges, const std::string& origin)
    : vocab_(std::move(vocab)) {
  static std::atomic<uint64_t> next_instance{1};
  instance_ = next_instance++;
  for (const auto& [token, id] : vocab_) {
    ZT_CHECK(id >= 0, origin, ": vocab entry \"", token, "\" has negative id ", id);
    max_id_ = std::max(max_id_, id);
  }
  id_token_.resize(size_t(max_id_ + 1));
  id_bytes_.resize(size_t(max_id_ + 1));
  id_present_.assign(size_t(max_id_ + 1), false);
  for (const auto& [token, id] : vocab_) {
    ZT_CHECK(!id_present_[size_t(id)], origin, ": vocab id ", id, " is given to both \"", id_token_[size_t(id)],
             "\" and \"", token, "\"");
    id_present_[size_t(id)] = true;
    id_token_[size_t(id)] = token;
    const auto raw = byte_level_decode(token);
    id_bytes_[size_t(id)] = raw ? *raw : token;
    if (raw) raw_vocab_.emplace(*raw, id);
  }
  for (int b = 0; b < 256; ++b) {
    std::string ch;
    utf8_append(ch, byte_level_code_point(uint8_t(b)));
    const auto it = vocab_.find(ch);
    byte_id_[size_t(b)] = it == vocab_.end() ? -1 : it->second;
  }
  merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    const auto ia = vocab_.find(a), ib = vocab_.find(b), im = vocab_.find(a + b);
    ZT_CHECK(ia != vocab_.end() && ib != vocab_.end(), origin, ": merge ", rank, " (\"", a, "\" \"", b,
             "\") uses a token that is not in the vocab");
    ZT_CHECK(im != vocab_.end(), origin, ": merge ", rank, " (\"", a, "\" \"", b, "\") makes \"", a + b,
             "\", which is not in the vocab");
    // A pair listed twice keeps its first (lowest) rank.
    merges_.emplace(pair_key(ia->second, ib->second), Merge{int32_t(rank), im->second});
  }
}

void BpeModel::append_unknown_byte(uint8_t byte, std::vector<int32_t>& out) const {
  if (byte_fallback) {
    // The fallback spells the UTF-8 of the byte's character, as tokenizers does for any
    // character missing from the vocab.
    std::string ch;
    utf8_append(ch, byte_level_code_point(byte));
    std::vector<int32_t> ids;
    for (char c : ch) {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", static_cast<unsigned char>(c));
      const auto it = vocab_.find(name);
      if (it == vocab_.end()) {
        ids.clear();
        break;
      }
      ids.push_back(it->second);
    }
    if (!ids.empty()) {
      out.insert(out.end(), ids.begin(), ids.end());
      return;
    }
  }
  if (unk_id >= 0) {
    if (!(fuse_unk && !out.empty() && out.back() == unk_id)) out.push_back(unk_id);
  }
  // With neither, the byte is dropped, as tokenizers drops a character it cannot represent.
}

void BpeModel::merge_symbols(std::vector<int32_t>& ids) const {
  const int n = int(ids.size());
  if (n < 2) return;
  // Symbols form a linked list over ids; a merge folds the right symbol into the left one.
  std::vector<int> prev(ids.size()), next(ids.size());
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Candidate {
    int32_t rank;
    int pos;  // the left symbol
    int32_t left, right, merged;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  // Lowest rank first, leftmost on ties: the order in which tokenizers applies merges.
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  const auto push = [&](int pos) {
    if (pos < 0 || next[pos] < 0) return;
    const auto it = merges_.find(pair_key(ids[pos], ids[next[pos]]));
    if (it != merges_.end()) queue.push({it->second.rank, pos, ids[pos], ids[next[pos]], it->second.id});
  };
  for (int i = 0; i + 1 < n; ++i) push(i);
  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    // Stale entries (a side already merged into something else) are skipped on the way out.
    const int q = next[c.pos];
    if (ids[c.pos] != c.left || q < 0 || ids[q] != c.right) continue;
    ids[c.pos] = c.merged;
    ids[q] = -1;
    next[c.pos] = next[q];
    if (next[q] >= 0) prev[next[q]] = c.pos;
    push(prev[c.pos]);
    push(c.pos);
  }
  size_t w = 0;
  for (int i = 0; i >= 0; i = next[i]) ids[w++] = ids[i];
  ids.resize(w);
}

void BpeModel::encode_piece(std::string_view bytes, std::vector<int32_t>& out) const {
  if (bytes.empty()) return;
  if (ignore_merges) {
    const auto it = raw_vocab_.find(std::string(bytes));
    if (it != raw_vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  const bool cacheable = bytes.size() <= kCacheMaxPieceBytes;
  PieceCache* cache = nullptr;
  if (cacheable) {
    cache = &thread_cache(instance_);
    const auto it = cache->map.find(bytes);
    if (it != cache->map.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  // A byte without a token becomes its fallback or unk ids, which take part in the merges
  // like any symbol (or, with neither, vanishes so that its neighbours meet), as in tokenizers.
  std::vector<int32_t> result;
  result.reserve(bytes.size());
  for (char ch : bytes) {
    const uint8_t b = static_cast<uint8_t>(ch);
    if (byte_id_[b] >= 0) {
      result.push_back(byte_id_[b]);
    } else {
      append_unknown_byte(b, result);
    }
  }
  merge_symbols(result);
  out.insert(out.end(), result.begin(), result.end());
  if (cacheable) {
    if (cache->map.size() >= kCacheEntries) cache->map.clear();
    cache->map.emplace(std::string(bytes), std::move(result));
  }
}

}  // namespace zt::io
