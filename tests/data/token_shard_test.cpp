#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "../io/io_test_util.hpp"
#include "zt/data/token_shard.hpp"

namespace zt::data {
namespace {

using io::test::expect_error;
using io::test::read_bytes;
using io::test::TempDir;
using io::test::write_bytes;

TEST(TokenShard, RoundTripsBothWidths) {
  TempDir dir;
  for (uint32_t width : {2u, 4u}) {
    SCOPED_TRACE(width);
    const std::string path = dir.file("s" + std::to_string(width) + ".ztok");
    const uint32_t vocab = width == 2 ? 50257 : 128256;
    std::vector<int32_t> ids;
    for (int i = 0; i < 100000; ++i) ids.push_back(int32_t((uint64_t(i) * 7919) % vocab));
    TokenShardWriter w(path, width, vocab, 7);
    w.append(std::span(ids).subspan(0, 10));
    w.append(std::span(ids).subspan(10));
    w.add_documents(3);
    EXPECT_FALSE(std::filesystem::exists(path));
    w.finish();
    EXPECT_EQ(std::filesystem::file_size(path), 64 + ids.size() * width);

    TokenShardReader r(path);
    EXPECT_EQ(r.size(), ids.size());
    EXPECT_EQ(r.token_bytes(), width);
    EXPECT_EQ(r.vocab_size(), vocab);
    EXPECT_EQ(r.document_count(), 3u);
    EXPECT_EQ(r.eos_id(), 7);
    EXPECT_EQ(r.read(0, ids.size()), ids);
    EXPECT_EQ(r.read(99990, 10), std::vector<int32_t>(ids.end() - 10, ids.end()));
    EXPECT_EQ(r.at(12345), uint32_t(ids[12345]));
    if (width == 2) {
      EXPECT_EQ(r.u16()[5], ids[5]);
      EXPECT_THROW(r.u32(), Error);
    } else {
      EXPECT_EQ(r.u32()[5], uint32_t(ids[5]));
    }
    expect_error([&] { r.read(99990, 11); }, "past the end", path);
    expect_error([&] { r.at(100000); }, "past the end");
  }
}

TEST(TokenShard, HeaderLayoutIsAsDocumented) {
  TempDir dir;
  const std::string path = dir.file("h.ztok");
  TokenShardWriter w(path, 2, 0);
  const int32_t ids[] = {1, 2, 65535};
  w.append(ids);
  w.finish();
  const std::string bytes = read_bytes(path);
  ASSERT_EQ(bytes.size(), 70u);
  EXPECT_EQ(bytes.substr(0, 8), "ZTTOKENS");
  uint64_t count;
  std::memcpy(&count, bytes.data() + 16, 8);
  EXPECT_EQ(count, 3u);
  EXPECT_EQ(uint8_t(bytes[68]), 0xff);
  EXPECT_EQ(uint8_t(bytes[69]), 0xff);
  EXPECT_FALSE(TokenShardReader(path).eos_id().has_value());
}

TEST(TokenShard, WriterRejectsIdsOutOfRange) {
  TempDir dir;
  TokenShardWriter w(dir.file("r.ztok"), 2, 1000);
  const int32_t too_big[] = {5, 1000};
  expect_error([&] { w.append(too_big); }, "id 1000", "[0, 1000)");
  const int32_t negative[] = {-1};
  expect_error([&] { w.append(negative); }, "id -1");
  TokenShardWriter wide(dir.file("w.ztok"), 2, 0);
  const int32_t wider[] = {70000};
  expect_error([&] { wide.append(wider); }, "id 70000");
  expect_error([&] { TokenShardWriter(dir.file("x.ztok"), 2, 100000); }, "does not fit 2-byte");
  expect_error([&] { TokenShardWriter(dir.file("x.ztok"), 3, 0); }, "expected 2 or 4");
}

TEST(TokenShard, TruncatedAndForeignFilesAreClearErrors) {
  TempDir dir;
  const std::string path = dir.file("t.ztok");
  TokenShardWriter w(path, 4, 0);
  const int32_t ids[] = {1, 2, 3, 4};
  w.append(ids);
  w.finish();
  const std::string whole = read_bytes(path);
  const std::string bad = dir.file("bad.ztok");
  write_bytes(bad, whole.substr(0, whole.size() - 1));
  expect_error([&] { TokenShardReader r(bad); }, bad, "declares 4 tokens", "truncated");
  write_bytes(bad, whole.substr(0, 30));
  expect_error([&] { TokenShardReader r(bad); }, "shorter than its 64-byte header");
  write_bytes(bad, "hello world, not tokens");
  expect_error([&] { TokenShardReader r(bad); }, "is not a token shard");
  write_bytes(bad, "");
  expect_error([&] { TokenShardReader r(bad); }, "too short");
  std::string v2 = whole;
  v2[8] = 2;
  write_bytes(bad, v2);
  expect_error([&] { TokenShardReader r(bad); }, "format version 2");
}

TEST(TokenShard, ReadsLlmcShards) {
  TempDir dir;
  const std::string path = dir.file("fineweb_val_000000.bin");
  std::vector<int32_t> header(256, 0);
  header[0] = 20240520;
  header[1] = 1;
  header[2] = 3;
  std::string bytes(reinterpret_cast<const char*>(header.data()), 1024);
  const uint16_t ids[] = {50256, 11, 42};
  bytes.append(reinterpret_cast<const char*>(ids), sizeof ids);
  write_bytes(path, bytes);
  TokenShardReader r(path);
  EXPECT_TRUE(r.is_llmc());
  EXPECT_EQ(r.read(0, 3), (std::vector<int32_t>{50256, 11, 42}));
  write_bytes(path, bytes.substr(0, bytes.size() - 2));
  expect_error([&] { TokenShardReader r2(path); }, "llm.c", "declares 3 tokens");
}

}  // namespace
}  // namespace zt::data
