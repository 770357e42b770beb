#include "zt/data/token_shard.hpp"

#include <bit>
#include <cstring>

#include "zt/core/error.hpp"
#include "zt/io/atomic_file.hpp"
#include "zt/io/mapped_file.hpp"

namespace zt::data {
namespace {

static_assert(std::endian::native == std::endian::little, "token shards are little-endian");

constexpr int32_t kLlmcMagic = 20240520;
constexpr size_t kLlmcHeaderBytes = 256 * sizeof(int32_t);
constexpr uint32_t kNoEos = 0xffffffffu;
constexpr size_t kWriteBufferBytes = 1 << 22;

template <class T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace

uint32_t token_bytes_for_vocab(uint64_t vocab_size) { return vocab_size <= 65536 ? 2 : 4; }

TokenShardReader::TokenShardReader(const std::string& path)
    : path_(path), file_(std::make_unique<io::MappedFile>(path)) {
  const uint8_t* p = file_->data();
  const uint64_t size = file_->size();
  ZT_CHECK(size >= 8, "token shard '", path, "' is ", size, " bytes, too short for a header (truncated?)");
  if (std::memcmp(p, kTokenShardMagic, 8) == 0) {
    ZT_CHECK(size >= kTokenShardHeaderBytes, "token shard '", path, "' is ", size,
             " bytes, shorter than its 64-byte header (truncated?)");
    const uint32_t version = load<uint32_t>(p + 8);
    ZT_CHECK(version == kTokenShardVersion, "token shard '", path, "' has format version ", version,
             "; this build reads version ", kTokenShardVersion);
    token_bytes_ = load<uint32_t>(p + 12);
    count_ = load<uint64_t>(p + 16);
    documents_ = load<uint64_t>(p + 24);
    vocab_size_ = load<uint32_t>(p + 32);
    const uint32_t eos = load<uint32_t>(p + 36);
    if (eos != kNoEos) eos_id_ = int32_t(eos);
    tokens_ = p + kTokenShardHeaderBytes;
    ZT_CHECK(token_bytes_ == 2 || token_bytes_ == 4, "token shard '", path, "' declares ", token_bytes_,
             "-byte tokens; expected 2 or 4");
    ZT_CHECK(count_ <= (size - kTokenShardHeaderBytes) / token_bytes_ &&
                 size == kTokenShardHeaderBytes + count_ * token_bytes_,
             "token shard '", path, "' declares ", count_, " tokens of ", token_bytes_, " bytes but holds ",
             size - kTokenShardHeaderBytes, " bytes of tokens (truncated or corrupt)");
  } else if (size >= kLlmcHeaderBytes && load<int32_t>(p) == kLlmcMagic) {
    const int32_t version = load<int32_t>(p + 4);
    ZT_CHECK(version == 1 || version == 2, "llm.c token shard '", path, "' has version ", version,
             "; expected 1 (uint16 ids) or 2 (uint32 ids)");
    llmc_ = true;
    token_bytes_ = version == 1 ? 2 : 4;
    const int32_t count = load<int32_t>(p + 8);
    ZT_CHECK(count >= 0, "llm.c token shard '", path, "' declares ", count, " tokens");
    count_ = uint64_t(count);
    tokens_ = p + kLlmcHeaderBytes;
    ZT_CHECK(size == kLlmcHeaderBytes + count_ * token_bytes_, "llm.c token shard '", path, "' declares ", count_,
             " tokens but holds ", size - kLlmcHeaderBytes, " bytes of them (truncated or corrupt)");
  } else {
    ZT_THROW("'", path, "' is not a token shard (no ZTTOKENS magic, nor llm.c's 20240520)");
  }
}

TokenShardReader::~TokenShardReader() = default;
TokenShardReader::TokenShardReader(TokenShardReader&&) noexcept = default;
TokenShardReader& TokenShardReader::operator=(TokenShardReader&&) noexcept = default;

uint32_t TokenShardReader::at(uint64_t i) const {
  ZT_CHECK(i < count_, "token ", i, " is past the end of '", path_, "' (", count_, " tokens)");
  return token_bytes_ == 2 ? load<uint16_t>(tokens_ + 2 * i) : load<uint32_t>(tokens_ + 4 * i);
}

void TokenShardReader::read(uint64_t begin, uint64_t n, int32_t* out) const {
  ZT_CHECK(begin <= count_ && n <= count_ - begin, "tokens [", begin, ", ", begin + n, ") are past the end of '",
           path_, "' (", count_, " tokens)");
  if (token_bytes_ == 2) {
    const uint8_t* p = tokens_ + 2 * begin;
    for (uint64_t i = 0; i < n; ++i) out[i] = load<uint16_t>(p + 2 * i);
  } else {
    std::memcpy(out, tokens_ + 4 * begin, n * 4);  // ids below 2^31 read the same as int32
  }
}

std::vector<int32_t> TokenShardReader::read(uint64_t begin, uint64_t n) const {
  std::vector<int32_t> out(n);
  read(begin, n, out.data());
  return out;
}

std::span<const uint16_t> TokenShardReader::u16() const {
  ZT_CHECK(token_bytes_ == 2, "token shard '", path_, "' holds ", token_bytes_, "-byte ids, not uint16");
  return {reinterpret_cast<const uint16_t*>(tokens_), count_};
}

std::span<const uint32_t> TokenShardReader::u32() const {
  ZT_CHECK(token_bytes_ == 4, "token shard '", path_, "' holds ", token_bytes_, "-byte ids, not uint32");
  return {reinterpret_cast<const uint32_t*>(tokens_), count_};
}

TokenShardWriter::TokenShardWriter(const std::string& path, uint32_t token_bytes, uint32_t vocab_size,
                                   std::optional<int32_t> eos_id)
    : path_(path), token_bytes_(token_bytes), vocab_size_(vocab_size), eos_id_(eos_id) {
  ZT_CHECK(token_bytes == 2 || token_bytes == 4, "token shard '", path, "': token width ", token_bytes,
           " bytes; expected 2 or 4");
  ZT_CHECK(token_bytes == 4 || vocab_size <= 65536, "token shard '", path, "': a vocabulary of ", vocab_size,
           " ids does not fit 2-byte tokens");
  file_ = std::make_unique<io::AtomicFile>(path);
  buffer_.reserve(kWriteBufferBytes);
}

TokenShardWriter::~TokenShardWriter() = default;

void TokenShardWriter::append(std::span<const int32_t> ids) {
  ZT_CHECK(file_ != nullptr, "token shard '", path_, "': append after finish()");
  const uint64_t limit = vocab_size_ ? vocab_size_ : (token_bytes_ == 2 ? 65536ull : 0x80000000ull);
  for (int32_t id : ids) {
    ZT_CHECK(id >= 0 && uint64_t(id) < limit, "token shard '", path_, "': id ", id, " at token ", count_,
             " is outside [0, ", limit, ")");
    if (token_bytes_ == 2) {
      const uint16_t v = uint16_t(id);
      buffer_.insert(buffer_.end(), reinterpret_cast<const uint8_t*>(&v), reinterpret_cast<const uint8_t*>(&v) + 2);
    } else {
      const uint32_t v = uint32_t(id);
      buffer_.insert(buffer_.end(), reinterpret_cast<const uint8_t*>(&v), reinterpret_cast<const uint8_t*>(&v) + 4);
    }
    ++count_;
    if (buffer_.size() >= kWriteBufferBytes) flush();
  }
}

void TokenShardWriter::flush() {
  if (buffer_.empty()) return;
  file_->write_at(kTokenShardHeaderBytes + (count_ * token_bytes_ - buffer_.size()), buffer_.data(), buffer_.size());
  buffer_.clear();
}

void TokenShardWriter::finish() {
  ZT_CHECK(file_ != nullptr, "token shard '", path_, "' finished twice");
  flush();
  uint8_t header[kTokenShardHeaderBytes] = {};
  std::memcpy(header, kTokenShardMagic, 8);
  const uint32_t eos = eos_id_ ? uint32_t(*eos_id_) : kNoEos;
  std::memcpy(header + 8, &kTokenShardVersion, 4);
  std::memcpy(header + 12, &token_bytes_, 4);
  std::memcpy(header + 16, &count_, 8);
  std::memcpy(header + 24, &documents_, 8);
  std::memcpy(header + 32, &vocab_size_, 4);
  std::memcpy(header + 36, &eos, 4);
  file_->write_at(0, header, sizeof header);
  file_->commit();
  file_.reset();
}

}  // namespace zt::data
