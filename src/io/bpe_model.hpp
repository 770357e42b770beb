// The BPE model of a byte-level tokenizer: vocab, merges by rank, and the encoding of one
// pre-tokenized piece.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace zt::io {

class BpeModel {
 public:
  // vocab: token (byte-level string) -> id. merges: pairs of tokens, in rank order.
  // zt::Error (prefixed by origin) for a merge whose parts or result are not in vocab.
  BpeModel(std::unordered_map<std::string, int32_t> vocab, const std::vector<std::pair<std::string, std::string>>& merges,
           const std::string& origin);

  bool ignore_merges = false;  // a piece that is itself a token is one id (Llama-3)
  bool byte_fallback = false;  // a byte with no token becomes <0xXX> tokens
  int32_t unk_id = -1;         // else this id (when set), fused with a preceding unk if fuse_unk
  bool fuse_unk = false;

  // Appends the ids of one piece (raw bytes).
  void encode_piece(std::string_view bytes, std::vector<int32_t>& out) const;

  const std::unordered_map<std::string, int32_t>& vocab() const { return vocab_; }
  int32_t max_id() const { return max_id_; }
  // A token's raw bytes through the byte decoder, or its own UTF-8 when a character of it is
  // not in the byte-level alphabet (tokenizers' ByteLevel decoder rule).
  const std::string& token_bytes(int32_t id) const { return id_bytes_[size_t(id)]; }
  const std::string& token(int32_t id) const { return id_token_[size_t(id)]; }
  bool has_id(int32_t id) const { return id >= 0 && size_t(id) < id_token_.size() && id_present_[size_t(id)]; }
  uint64_t instance() const { return instance_; }

 private:
  struct Merge {
    int32_t rank;
    int32_t id;
  };
  static uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  void merge_symbols(std::vector<int32_t>& ids) const;
  void append_unknown_byte(uint8_t byte, std::vector<int32_t>& out) const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::unordered_map<std::string, int32_t> raw_vocab_;  // raw bytes -> id, for ignore_merges
  std::unordered_map<uint64_t, Merge> merges_;
  std::array<int32_t, 256> byte_id_{};                    // a byte's single-character token, or -1
  std::vector<std::string> id_token_, id_bytes_;
  std::vector<bool> id_present_;
  int32_t max_id_ = -1;
  uint64_t instance_;  // names this model in the per-thread caches
};

}  // namespace zt::io
