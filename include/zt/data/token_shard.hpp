// Token shards: files of token ids for training, read through a memory map.
//
// File layout (all integers little-endian):
//   offset  size  field
//        0     8  magic "ZTTOKENS"
//        8     4  version (1)
//       12     4  token_bytes: 2 (uint16 ids, vocabularies up to 65536) or 4 (uint32 ids)
//       16     8  token_count
//       24     8  document_count (documents that end in this shard; 0 when unknown)
//       32     4  vocab_size (every id is below it; 0 when unknown)
//       36     4  eos_id (the id that ends each document; 0xFFFFFFFF when none)
//       40    24  reserved, zero
//       64     -  token_count ids of token_bytes each
// The header is 64 bytes so that the ids start aligned for any width. A file whose size is not
// exactly 64 + token_count * token_bytes is truncated or corrupt, and refused.
//
// The reader also accepts llm.c's .bin shards (a 256 x int32 header: magic 20240520, version
// 1 for uint16 or 2 for uint32 ids, token count), so data prepared for llm.c trains here as is.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace zt::io {
class MappedFile;
class AtomicFile;
}  // namespace zt::io

namespace zt::data {

inline constexpr char kTokenShardMagic[8] = {'Z', 'T', 'T', 'O', 'K', 'E', 'N', 'S'};
inline constexpr uint32_t kTokenShardVersion = 1;
inline constexpr size_t kTokenShardHeaderBytes = 64;

// The narrowest width that holds every id of a vocabulary: 2 up to 65536 ids, else 4.
uint32_t token_bytes_for_vocab(uint64_t vocab_size);

class TokenShardReader {
 public:
  explicit TokenShardReader(const std::string& path);  // zt::Error naming the path and the problem
  ~TokenShardReader();
  TokenShardReader(TokenShardReader&&) noexcept;
  TokenShardReader& operator=(TokenShardReader&&) noexcept;

  uint64_t size() const { return count_; }  // tokens
  uint32_t token_bytes() const { return token_bytes_; }
  uint64_t document_count() const { return documents_; }
  uint32_t vocab_size() const { return vocab_size_; }  // 0 when unknown
  std::optional<int32_t> eos_id() const { return eos_id_; }
  const std::string& path() const { return path_; }
  bool is_llmc() const { return llmc_; }

  uint32_t at(uint64_t i) const;  // bounds-checked
  // Copies tokens [begin, begin + n) as int32 into out; zt::Error past the end.
  void read(uint64_t begin, uint64_t n, int32_t* out) const;
  std::vector<int32_t> read(uint64_t begin, uint64_t n) const;
  // The ids in place (valid while the reader lives); zt::Error if the width differs.
  std::span<const uint16_t> u16() const;
  std::span<const uint32_t> u32() const;

 private:
  std::string path_;
  std::unique_ptr<io::MappedFile> file_;
  const uint8_t* tokens_ = nullptr;
  uint64_t count_ = 0, documents_ = 0;
  uint32_t token_bytes_ = 0, vocab_size_ = 0;
  std::optional<int32_t> eos_id_;
  bool llmc_ = false;
};

// Writes one shard atomically: ids stream out as they are appended, the header is filled in
// by finish(), and the file appears at its path only then.
class TokenShardWriter {
 public:
  // vocab_size 0: unknown (ids are then checked only against the width).
  TokenShardWriter(const std::string& path, uint32_t token_bytes, uint32_t vocab_size = 0,
                   std::optional<int32_t> eos_id = std::nullopt);
  ~TokenShardWriter();
  TokenShardWriter(const TokenShardWriter&) = delete;
  TokenShardWriter& operator=(const TokenShardWriter&) = delete;

  // zt::Error for an id that is negative, past vocab_size or too wide for token_bytes.
  void append(std::span<const int32_t> ids);
  void add_documents(uint64_t n) { documents_ += n; }
  uint64_t size() const { return count_; }
  void finish();
  const std::string& path() const { return path_; }

 private:
  void flush();

  std::string path_;
  std::unique_ptr<io::AtomicFile> file_;
  uint32_t token_bytes_, vocab_size_;
  std::optional<int32_t> eos_id_;
  uint64_t count_ = 0, documents_ = 0;
  std::vector<uint8_t> buffer_;
};

}  // namespace zt::data
