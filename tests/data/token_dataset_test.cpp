#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "zt/data/markov_corpus.hpp"
#include "zt/data/token_dataset.hpp"
#include "zt/engine/trainer.hpp"

namespace zt::data {
namespace {

namespace fs = std::filesystem;

class TokenDatasetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("zt_token_dataset_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  // A shard whose i-th token is (first + i) % 1000.
  void write_counting_shard(const std::string& name, int32_t first, int64_t n) {
    TokenShardWriter w((dir_ / name).string(), 2, 1000);
    std::vector<int32_t> ids(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) ids[size_t(i)] = int32_t((first + i) % 1000);
    w.append(ids);
    w.finish();
  }
  fs::path dir_;
};

TEST_F(TokenDatasetTest, RowsAreContiguousWindowsWithShiftedTargets) {
  write_counting_shard("a.ztok", 0, 101);
  TokenDataset ds(dir_.string(), 1000, 1, 0, 1);
  const Batch b = ds.next_batch(4, 10);
  const int32_t* in = b.inputs.data<int32_t>();
  const int32_t* out = b.targets.data<int32_t>();
  for (int64_t r = 0; r < 4; ++r) {
    EXPECT_EQ(in[r * 10] % 10, 0) << "windows start every T tokens";
    for (int64_t t = 0; t < 10; ++t) {
      EXPECT_EQ(out[r * 10 + t], in[r * 10 + t] + 1);
      if (t) EXPECT_EQ(in[r * 10 + t], in[r * 10 + t - 1] + 1);
    }
  }
  EXPECT_EQ(ds.window_count(), 10u);
}

TEST_F(TokenDatasetTest, RanksSplitAnEpochIntoDisjointParts) {
  write_counting_shard("a.ztok", 0, 301);
  write_counting_shard("b.ztok", 500, 201);
  std::set<int32_t> seen;
  size_t rows = 0;
  for (int rank = 0; rank < 3; ++rank) {
    TokenDataset ds(dir_.string(), 1000, 7, rank, 3);
    for (int k = 0; k < 5; ++k) {  // (30 + 20) windows / 3 ranks = 16 each; 5 batches of 3 = 15
      const Batch b = ds.next_batch(3, 10);
      for (int64_t r = 0; r < 3; ++r) {
        EXPECT_TRUE(seen.insert(b.inputs.data<int32_t>()[r * 10]).second) << "a window given twice";
        ++rows;
      }
    }
  }
  EXPECT_EQ(rows, 45u);
}

TEST_F(TokenDatasetTest, SeekResumesExactly) {
  write_counting_shard("a.ztok", 0, 2001);
  TokenDataset a(dir_.string(), 1000, 3, 1, 2), b(dir_.string(), 1000, 3, 1, 2);
  for (int k = 0; k < 7; ++k) a.next_batch(4, 16);
  const Batch next = a.next_batch(4, 16);
  b.next_batch(4, 16);  // fixes T
  b.seek(7);
  EXPECT_EQ(b.next_batch(4, 16).inputs.to_floats(), next.inputs.to_floats());
}

TEST_F(TokenDatasetTest, ErrorsNameTheProblem) {
  write_counting_shard("a.ztok", 0, 50);
  EXPECT_THROW(TokenDataset(dir_.string(), 500, 1, 0, 1), Error);  // shard vocabulary 1000 > model's 500
  TokenDataset ds(dir_.string(), 1000, 1, 0, 8);
  EXPECT_THROW(ds.next_batch(1, 10), Error);  // 4 windows for 8 ranks
  EXPECT_THROW(TokenDataset((dir_ / "missing").string(), 1000, 1, 0, 1), Error);
}

TEST_F(TokenDatasetTest, TrainsFromShards) {
  MarkovCorpus corpus({128, 4, 1.0, 1234, 9});
  {
    TokenShardWriter w((dir_ / "markov.ztok").string(), 2, 128);
    for (int k = 0; k < 40; ++k) {
      const Batch b = corpus.next_batch(1, 1024);
      w.append(std::span(b.inputs.data<int32_t>(), 1024));
    }
    w.finish();
  }
  engine::TrainOptions o;
  o.data = dir_.string();
  o.steps = 60;
  const auto r = engine::train(o, [](const std::string&) {});
  EXPECT_LT(r.final_loss, 0.75 * r.steps.front().loss);
  EXPECT_LT(r.entropy_floor, 0) << "shards carry no known floor";
}

}  // namespace
}  // namespace zt::data
