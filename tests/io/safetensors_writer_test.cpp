#include <gtest/gtest.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "io_test_util.hpp"
#include "zt/io/safetensors.hpp"
#include "zt/io/safetensors_sharded.hpp"

namespace zt::io {
namespace {

using test::expect_error;
using test::read_bytes;
using test::TempDir;

const std::string kFixtures = ZT_FIXTURES_DIR;

std::vector<std::pair<std::string, Tensor>> read_all(const SafetensorsReader& reader) {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const TensorInfo& t : reader.tensors()) out.emplace_back(t.name, reader.read(t.name));
  return out;
}

// The fixtures were written by the Python safetensors library; ours must produce the same file,
// header and all, from the same tensors and metadata.
TEST(SafetensorsWriter, FixturesRoundTripByteForByte) {
  TempDir dir;
  for (const char* rel : {"/hf/tiny-gpt2/model.safetensors", "/hf/tiny-gpt2/reference.safetensors",
                          "/hf/tiny-llama/model.safetensors", "/hf/tiny-llama/reference.safetensors"}) {
    SCOPED_TRACE(rel);
    const std::string src = kFixtures + rel;
    SafetensorsReader original(src);
    const std::string copy = dir.file("copy.safetensors");
    save_safetensors(copy, read_all(original), original.metadata());

    SafetensorsReader again(copy);
    ASSERT_EQ(again.tensors().size(), original.tensors().size());
    for (const TensorInfo& t : original.tensors()) {
      const TensorInfo& u = again.info(t.name);
      EXPECT_EQ(u.dtype, t.dtype) << t.name;
      EXPECT_EQ(u.shape, t.shape) << t.name;
      EXPECT_EQ(u.begin, t.begin) << t.name;
      EXPECT_EQ(again.bytes(t.name), original.bytes(t.name)) << t.name;
    }
    EXPECT_EQ(again.metadata(), original.metadata());
    EXPECT_TRUE(read_bytes(copy) == read_bytes(src)) << "the files differ";
  }
}

// The reference implementation's own serialization test vectors.
TEST(SafetensorsWriter, MatchesReferenceSerialization) {
  TempDir dir;
  const std::string path = dir.file("ref.safetensors");
  Tensor t = Tensor::from_floats({1, 2, 3}, {0, 1, 2, 3, 4, 5});
  save_safetensors(path, {{"attn.0", t}}, {});
  const std::string bytes = read_bytes(path);
  ASSERT_EQ(bytes.size(), 8u + 64u + 24u);
  EXPECT_EQ(uint8_t(bytes[0]), 64);
  EXPECT_EQ(bytes.substr(8, 64), R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})");

  save_safetensors(path, {}, {});
  EXPECT_EQ(read_bytes(path), std::string("\x08\0\0\0\0\0\0\0{}      ", 16));
  save_safetensors(path, {}, {{"framework", "pt"}});
  EXPECT_EQ(read_bytes(path).substr(8), R"({"__metadata__":{"framework":"pt"}}     )");
}

TEST(SafetensorsWriter, EveryDtypeRoundTripsSortedByAlignment) {
  TempDir dir;
  const std::string path = dir.file("dtypes.safetensors");
  std::vector<std::pair<std::string, Tensor>> tensors;
  const DType dtypes[] = {DType::b8, DType::u8, DType::i8, DType::f16, DType::bf16,
                          DType::i32, DType::f32, DType::f64, DType::i64};
  int k = 0;
  for (DType d : dtypes) {
    Tensor t = Tensor::empty({3, int64_t(k % 3 + 1)}, d);
    auto* p = static_cast<uint8_t*>(t.raw());
    for (size_t i = 0; i < t.nbytes(); ++i) p[i] = uint8_t(i * 7 + k);
    tensors.emplace_back(std::string("t") + dtype_name(d), t);
    ++k;
  }
  save_safetensors(path, tensors);
  SafetensorsReader reader(path);
  EXPECT_EQ(reader.metadata().at("format"), "pt");
  for (const auto& [name, t] : tensors) {
    Tensor u = reader.read(name);
    EXPECT_EQ(u.dtype(), t.dtype());
    EXPECT_EQ(u.shape(), t.shape());
    EXPECT_EQ(std::string_view(static_cast<const char*>(u.raw()), u.nbytes()),
              std::string_view(static_cast<const char*>(t.raw()), t.nbytes()));
    // Every tensor starts aligned to its element size (the data section starts 8-aligned).
    EXPECT_EQ(reader.info(name).begin % dtype_size(t.dtype()), 0u) << name;
  }
  // Descending alignment: 8-byte types first, 1-byte types last.
  EXPECT_EQ(dtype_size(reader.tensors().front().dtype), 8u);
  EXPECT_EQ(dtype_size(reader.tensors().back().dtype), 1u);
}

TEST(SafetensorsWriter, StreamedWritesInAnyOrder) {
  TempDir dir;
  const std::string path = dir.file("streamed.safetensors");
  SafetensorsWriter writer(path, {{"b", DType::f32, {2}}, {"a", DType::i64, {1}}});
  writer.write("b", Tensor::from_floats({2}, {1.5f, 2.5f}));
  EXPECT_FALSE(std::filesystem::exists(path));  // nothing appears before finish()
  expect_error([&] { writer.finish(); }, "'a' was declared but never written");
  expect_error([&] { writer.write("b", Tensor::from_floats({3}, {1, 2, 3})); }, "declared as f32 (2)");
  expect_error([&] { writer.write("c", Tensor::from_floats({2}, {1, 2})); }, "not declared", "'c'");
  Tensor a = Tensor::empty({1}, DType::i64);
  a.data<int64_t>()[0] = -5;
  writer.write("a", a);
  writer.finish();
  SafetensorsReader reader(path);
  EXPECT_EQ(reader.read("a").data<int64_t>()[0], -5);
  EXPECT_EQ(reader.read("b").data<float>()[1], 2.5f);
}

TEST(SafetensorsWriter, AbandonedWriteLeavesNoFile) {
  TempDir dir;
  const std::string path = dir.file("abandoned.safetensors");
  {
    SafetensorsWriter writer(path, {{"x", DType::f32, {2}}});
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(SafetensorsWriter, RejectsDuplicateNames) {
  TempDir dir;
  Tensor t = Tensor::from_floats({1}, {1});
  expect_error([&] { save_safetensors(dir.file("d.safetensors"), {{"x", t}, {"x", t}}); }, "'x' is given twice");
}

TEST(ByteSize, ParsesTransformersUnits) {
  EXPECT_EQ(parse_byte_size("5GB"), 5000000000ull);
  EXPECT_EQ(parse_byte_size("500MB"), 500000000ull);
  EXPECT_EQ(parse_byte_size("2GiB"), 2ull << 30);
  EXPECT_EQ(parse_byte_size("10KiB"), 10240ull);
  EXPECT_EQ(parse_byte_size("100kb"), 12500ull);  // lower-case b: bits
  EXPECT_EQ(parse_byte_size("1048576"), 1048576ull);
  expect_error([] { parse_byte_size("five GB"); }, "five GB");
  expect_error([] { parse_byte_size("GB"); }, "GB");
}

TEST(ShardPlan, SplitsLikeTransformers) {
  using Plan = std::vector<std::vector<size_t>>;
  EXPECT_EQ(plan_safetensors_shards({4, 4, 4}, 8), (Plan{{0, 1}, {2}}));
  EXPECT_EQ(plan_safetensors_shards({4, 20, 4}, 8), (Plan{{1}, {0, 2}}));  // the large one alone
  EXPECT_EQ(plan_safetensors_shards({}, 8), (Plan{{}}));
  EXPECT_EQ(plan_safetensors_shards({8, 1}, 8), (Plan{{0}, {1}}));
}

TEST(ShardedSafetensors, WritesAndReadsShards) {
  TempDir dir;
  SafetensorsReader original(kFixtures + "/hf/tiny-llama/model.safetensors");
  const auto tensors = read_all(original);
  const std::string folder = dir.file("ckpt");
  const ShardedSaveResult saved = save_safetensors_sharded(folder, tensors, 100000);
  ASSERT_GT(saved.files.size(), 2u);
  const size_t n = saved.files.size();
  EXPECT_EQ(std::filesystem::path(saved.files[0]).filename().string(),
            "model-00001-of-0000" + std::to_string(n) + ".safetensors");
  EXPECT_EQ(saved.index_path, folder + "/model.safetensors.index.json");

  const auto index = nlohmann::json::parse(read_bytes(saved.index_path));
  uint64_t total = 0;
  for (const TensorInfo& t : original.tensors()) total += t.end - t.begin;
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), total);
  EXPECT_EQ(index["weight_map"].size(), tensors.size());
  EXPECT_EQ(saved.total_size, total);

  ShardedSafetensorsReader reader(folder);
  EXPECT_EQ(reader.shards().size(), n);
  EXPECT_EQ(reader.tensors().size(), tensors.size());
  EXPECT_EQ(reader.metadata().at("total_size"), std::to_string(total));
  for (const auto& [name, t] : tensors) {
    EXPECT_EQ(reader.bytes(name), original.bytes(name)) << name;
    EXPECT_EQ(reader.read(name).shape(), t.shape());
    EXPECT_EQ(std::filesystem::path(reader.shard_of(name)).filename().string(),
              index["weight_map"][name].get<std::string>());
  }
  for (const SafetensorsReader& shard : reader.shards()) {
    uint64_t bytes = 0;
    for (const TensorInfo& t : shard.tensors()) bytes += t.end - t.begin;
    EXPECT_TRUE(bytes <= 100000 || shard.tensors().size() == 1) << shard.path();
  }
  expect_error([&] { reader.info("model.norm.weigth"); }, "did you mean 'model.norm.weight'");

  // Saving again as one file removes the stale shards and index.
  save_safetensors_sharded(folder, tensors, parse_byte_size("5GB"));
  EXPECT_FALSE(std::filesystem::exists(saved.index_path));
  EXPECT_FALSE(std::filesystem::exists(saved.files[0]));
  ShardedSafetensorsReader single(folder);
  EXPECT_EQ(single.shards().size(), 1u);
  EXPECT_TRUE(read_bytes(folder + "/model.safetensors") == read_bytes(kFixtures + "/hf/tiny-llama/model.safetensors"));
}

TEST(ShardedSafetensors, BrokenIndexesAreClearErrors) {
  TempDir dir;
  const std::string folder = dir.file("ckpt");
  Tensor t = Tensor::from_floats({2}, {1, 2});
  save_safetensors_sharded(folder, {{"a", t}, {"b", t}}, 8);
  const std::string index = folder + "/model.safetensors.index.json";
  const std::string good = read_bytes(index);

  test::write_bytes(index, R"({"weight_map": {"a": "model-00001-of-00002.safetensors", "c": "model-00001-of-00002.safetensors"}})");
  expect_error([&] { ShardedSafetensorsReader r(folder); }, "tensor 'c'", "model-00001-of-00002.safetensors");
  test::write_bytes(index, R"({"weight_map": {"a": "model-00009-of-00009.safetensors"}})");
  expect_error([&] { ShardedSafetensorsReader r(folder); }, "model-00009-of-00009.safetensors", "does not exist");
  test::write_bytes(index, R"({"weight_map": {"a": "../x.safetensors"}})");
  expect_error([&] { ShardedSafetensorsReader r(folder); }, "not a file name");
  test::write_bytes(index, "{");
  expect_error([&] { ShardedSafetensorsReader r(folder); }, index, "not valid JSON");
  test::write_bytes(index, "{}");
  expect_error([&] { ShardedSafetensorsReader r(folder); }, "no \"weight_map\"");
  test::write_bytes(index, good);
  ShardedSafetensorsReader r(index);
  EXPECT_EQ(r.read("b").data<float>()[1], 2.0f);
  expect_error([&] { ShardedSafetensorsReader r(dir.file("nothing")); }, "does not exist");
}

}  // namespace
}  // namespace zt::io
