#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "io_test_util.hpp"
#include "zt/io/safetensors.hpp"

namespace zt::io {
namespace {

using test::expect_error;
using test::safetensors_bytes;
using test::TempDir;
using test::write_bytes;

const std::string kGpt2 = std::string(ZT_FIXTURES_DIR) + "/hf/tiny-gpt2/model.safetensors";
const std::string kGpt2Reference = std::string(ZT_FIXTURES_DIR) + "/hf/tiny-gpt2/reference.safetensors";

TEST(SafetensorsReader, ReadsTinyGpt2Weights) {
  SafetensorsReader reader(kGpt2);
  ASSERT_EQ(reader.tensors().size(), 28u);
  EXPECT_EQ(reader.metadata().at("format"), "pt");
  // File order is data order.
  EXPECT_EQ(reader.tensors().front().name, "transformer.h.0.attn.c_attn.bias");
  EXPECT_EQ(reader.tensors().back().name, "transformer.wte.weight");
  for (size_t i = 1; i < reader.tensors().size(); ++i) {
    EXPECT_EQ(reader.tensors()[i].begin, reader.tensors()[i - 1].end);
  }

  const TensorInfo& wte = reader.info("transformer.wte.weight");
  EXPECT_EQ(wte.dtype, DType::f32);
  EXPECT_EQ(wte.shape, (Shape{256, 64}));
  EXPECT_EQ(wte.begin, 416768u);
  EXPECT_EQ(wte.end, 482304u);

  Tensor t = reader.read("transformer.wte.weight");
  EXPECT_EQ(t.shape(), (Shape{256, 64}));
  EXPECT_EQ(t.dtype(), DType::f32);
  const float* p = t.data<float>();
  EXPECT_FLOAT_EQ(p[0], -0.012028218246996403f);
  EXPECT_FLOAT_EQ(p[1], -0.020808488130569458f);
  EXPECT_FLOAT_EQ(p[2], -0.04176216199994087f);
  EXPECT_TRUE(reader.contains("transformer.wpe.weight"));
  EXPECT_FALSE(reader.contains("lm_head.weight"));  // tied to wte, so not stored
}

TEST(SafetensorsReader, ReadsTinyGpt2ReferenceIntsAndConverts) {
  SafetensorsReader reader(kGpt2Reference);
  Tensor ids = reader.read("input_ids");
  EXPECT_EQ(ids.dtype(), DType::i32);
  EXPECT_EQ(ids.shape(), (Shape{2, 24}));
  const int32_t expected[] = {153, 191, 80, 91, 81, 183, 13, 76};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(ids.data<int32_t>()[i], expected[i]);

  Tensor ids_f = reader.read_as("input_ids", DType::f32);
  EXPECT_EQ(ids_f.dtype(), DType::f32);
  EXPECT_EQ(ids_f.data<float>()[0], 153.0f);

  Tensor loss = reader.read("loss");
  EXPECT_EQ(loss.shape(), (Shape{1}));
  EXPECT_FLOAT_EQ(loss.data<float>()[0], 5.599435329437256f);
  EXPECT_EQ(reader.read_as("loss", DType::f32).data<float>()[0], loss.data<float>()[0]);
  EXPECT_TRUE(reader.metadata().empty());
}

TEST(SafetensorsReader, MissingTensorNamesFileAndNearName) {
  SafetensorsReader reader(kGpt2);
  expect_error([&] { reader.info("transformer.wte.weigth"); }, kGpt2, "transformer.wte.weigth",
               "did you mean 'transformer.wte.weight'");
  expect_error([&] { reader.read("nothing.like.this"); }, kGpt2, "nothing.like.this");
}

TEST(SafetensorsReader, MissingFileIsAnError) {
  expect_error([] { SafetensorsReader r("/nonexistent/model.safetensors"); }, "/nonexistent/model.safetensors",
               "cannot open");
}

TEST(SafetensorsReader, EmptyTensorsAndScalars) {
  TempDir dir;
  const std::string path = dir.file("empty.safetensors");
  const std::string header =
      R"({"a":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]},"s":{"dtype":"I64","shape":[],"data_offsets":[0,8]}})";
  std::string data(8, '\0');
  data[0] = 7;
  write_bytes(path, safetensors_bytes(header, data));
  SafetensorsReader reader(path);
  EXPECT_EQ(reader.read("a").numel(), 0);
  Tensor s = reader.read("s");
  EXPECT_EQ(s.shape(), Shape{});
  EXPECT_EQ(s.data<int64_t>()[0], 7);
}

TEST(SafetensorsReader, EveryDtypeParses) {
  TempDir dir;
  const std::string path = dir.file("dtypes.safetensors");
  std::string header = "{";
  std::string data;
  uint64_t offset = 0;
  const std::pair<const char*, int> dtypes[] = {{"F64", 8}, {"I64", 8}, {"F32", 4}, {"I32", 4}, {"F16", 2},
                                                {"BF16", 2}, {"I8", 1},  {"U8", 1},  {"BOOL", 1}};
  for (const auto& [name, size] : dtypes) {
    if (offset) header += ",";
    header += str("\"t_", name, "\":{\"dtype\":\"", name, "\",\"shape\":[2],\"data_offsets\":[", offset, ",",
                  offset + 2 * size, "]}");
    offset += 2 * size;
  }
  header += "}";
  data.assign(offset, '\1');
  write_bytes(path, safetensors_bytes(header, data));
  SafetensorsReader reader(path);
  EXPECT_EQ(reader.info("t_BF16").dtype, DType::bf16);
  EXPECT_EQ(reader.info("t_BOOL").dtype, DType::b8);
  EXPECT_EQ(reader.info("t_F16").dtype, DType::f16);
  EXPECT_EQ(reader.read("t_U8").data<uint8_t>()[1], 1);
  EXPECT_EQ(reader.read_as("t_I8", DType::f32).data<float>()[0], 1.0f);
}

// Each malformed file must end in a zt::Error naming the file and the problem.
struct Malformed {
  const char* what;
  std::string bytes;
  std::vector<std::string> needles;
};

std::vector<Malformed> malformed_files() {
  const std::string ok_entry = R"("w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::string data8(8, '\0');
  std::string huge_length(8, '\0');
  huge_length[7] = 0x7f;
  std::string past_length(8, '\0');
  past_length[0] = 100;
  return {
      {"empty", "", {"shorter than the 8-byte header length"}},
      {"short", "abc", {"3 bytes", "shorter than the 8-byte"}},
      {"huge header", huge_length + "{}", {"declares a header of"}},
      {"header past file", past_length + "{}", {"100-byte header", "truncated"}},
      {"not json", safetensors_bytes("{not json", data8), {"not valid JSON"}},
      {"not an object", safetensors_bytes("[1,2]", ""), {"does not start with '{'"}},
      {"entry not object", safetensors_bytes(R"({"w":3})", ""), {"tensor 'w'", "expected an object"}},
      {"missing dtype", safetensors_bytes(R"({"w":{"shape":[2],"data_offsets":[0,8]}})", data8),
       {"tensor 'w'", "no \"dtype\""}},
      {"missing shape", safetensors_bytes(R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", data8),
       {"tensor 'w'", "no \"shape\""}},
      {"missing offsets", safetensors_bytes(R"({"w":{"dtype":"F32","shape":[2]}})", data8),
       {"tensor 'w'", "no \"data_offsets\""}},
      {"dtype not string", safetensors_bytes(R"({"w":{"dtype":4,"shape":[2],"data_offsets":[0,8]}})", data8),
       {"tensor 'w'", "dtype 4"}},
      {"unknown dtype", safetensors_bytes(R"({"w":{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}})", data8),
       {"tensor 'w'", "F8_E4M3"}},
      {"shape not array", safetensors_bytes(R"({"w":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", data8),
       {"tensor 'w'", "shape 2"}},
      {"negative dim", safetensors_bytes(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", data8),
       {"tensor 'w'", "not a non-negative integer"}},
      {"float dim", safetensors_bytes(R"({"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", data8),
       {"tensor 'w'", "not a non-negative integer"}},
      {"offsets wrong length", safetensors_bytes(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", data8),
       {"tensor 'w'", "expected [begin, end]"}},
      {"offsets negative", safetensors_bytes(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[-1,8]}})", data8),
       {"tensor 'w'", "non-negative integer"}},
      {"begin past end", safetensors_bytes(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", data8),
       {"tensor 'w'", "begin past end"}},
      {"size mismatch", safetensors_bytes(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", data8),
       {"tensor 'w'", "needs 12 bytes", "hold 8"}},
      {"overflowing shape",
       safetensors_bytes(
           R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,0]}})", ""),
       {"tensor 'w'", "needs"}},
      {"past the data", safetensors_bytes("{" + ok_entry + "}", "1234"), {"tensor 'w'", "past the 4-byte data"}},
      {"overlap",
       safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                         R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                         data8),
       {"overlaps tensor 'a'"}},
      {"gap",
       safetensors_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", data8),
       {"unowned bytes", "tensor 'a'"}},
      {"trailing", safetensors_bytes("{" + ok_entry + "}", data8 + "xx"), {"2 trailing bytes"}},
      {"metadata not strings", safetensors_bytes(R"({"__metadata__":{"format":1}})", ""),
       {"__metadata__", "must be strings"}},
      {"metadata not object", safetensors_bytes(R"({"__metadata__":"pt"})", ""), {"__metadata__", "expected an object"}},
  };
}

TEST(SafetensorsReader, MalformedFilesAreClearErrors) {
  TempDir dir;
  int i = 0;
  for (const Malformed& m : malformed_files()) {
    SCOPED_TRACE(m.what);
    const std::string path = dir.file("bad" + std::to_string(i++) + ".safetensors");
    write_bytes(path, m.bytes);
    try {
      SafetensorsReader reader(path);
      ADD_FAILURE() << "no error for " << m.what;
    } catch (const Error& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(path), std::string::npos) << message;
      for (const std::string& needle : m.needles) {
        EXPECT_NE(message.find(needle), std::string::npos) << "message: " << message << "\nmissing: " << needle;
      }
    }
  }
}

TEST(SafetensorsReader, EveryTruncationOfAFixtureIsAnError) {
  TempDir dir;
  const std::string whole = test::read_bytes(kGpt2);
  const std::string path = dir.file("truncated.safetensors");
  // Cut inside the length, inside the header, at the header's end and inside the data.
  for (size_t cut : {size_t(0), size_t(5), size_t(8), size_t(100), size_t(2632), size_t(2633), size_t(100000),
                     whole.size() - 1}) {
    SCOPED_TRACE(cut);
    write_bytes(path, whole.substr(0, cut));
    EXPECT_THROW(SafetensorsReader r(path), Error);
  }
  write_bytes(path, whole);
  EXPECT_NO_THROW(SafetensorsReader r(path));
}

}  // namespace
}  // namespace zt::io
