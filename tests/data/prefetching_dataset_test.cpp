// data::PrefetchingDataset: the batches and positions of the dataset it wraps, with a change of
// batch shape, seek and resume in between; an error drawing ahead surfaces at the batch that
// failed, and a dropped one does not.
#include <gtest/gtest.h>

#include <atomic>

#include "bit_equal.hpp"
#include "zt/data/markov_corpus.hpp"
#include "zt/data/prefetching_dataset.hpp"

namespace zt::data {
namespace {

using test::bit_equal;

MarkovCorpusOptions corpus_options() { return {64, 5, 1.0, 11, 3}; }

void expect_same_batch(const Batch& a, const Batch& b) {
  EXPECT_TRUE(bit_equal(a.inputs, b.inputs));
  EXPECT_TRUE(bit_equal(a.targets, b.targets));
}

TEST(PrefetchingDataset, SameBatchesAndPositionsAsTheDatasetItWraps) {
  MarkovCorpus plain(corpus_options());
  PrefetchingDataset ahead(std::make_unique<MarkovCorpus>(corpus_options()));
  // Shapes as a run with a change of micro-batch would ask for them.
  const std::pair<int64_t, int64_t> shapes[] = {{4, 16}, {4, 16}, {4, 16}, {2, 8}, {2, 8}, {4, 16}};
  for (const auto& [b, t] : shapes) {
    SCOPED_TRACE(testing::Message() << "B=" << b << " T=" << t << " at " << plain.position());
    expect_same_batch(ahead.next_batch(b, t), plain.next_batch(b, t));
    EXPECT_EQ(ahead.position(), plain.position());
  }
}

TEST(PrefetchingDataset, SeekAndResumeDrawFromThere) {
  MarkovCorpus plain(corpus_options());
  PrefetchingDataset ahead(std::make_unique<MarkovCorpus>(corpus_options()));
  for (int i = 0; i < 3; ++i) ahead.next_batch(3, 10);
  const uint64_t saved = ahead.position();
  EXPECT_EQ(saved, 3u);
  plain.seek(1);
  ahead.seek(1);
  expect_same_batch(ahead.next_batch(3, 10), plain.next_batch(3, 10));
  // A fresh wrapper restored to a saved position, as a resumed run is.
  PrefetchingDataset resumed(std::make_unique<MarkovCorpus>(corpus_options()));
  resumed.seek(saved);
  plain.seek(saved);
  expect_same_batch(resumed.next_batch(3, 10), plain.next_batch(3, 10));
  EXPECT_EQ(resumed.position(), saved + 1);
}

// Fails on the draw whose index is `failing` (counting from 0), else hands out empty batches.
class FailingDataset : public Dataset {
 public:
  explicit FailingDataset(uint64_t failing) : failing_(failing) {}
  Batch next_batch(int64_t b, int64_t t) override {
    if (position_++ == failing_) ZT_THROW("shard 7 is unreadable");
    return {Tensor::zeros({b, t}, DType::i32), Tensor::zeros({b, t}, DType::i32)};
  }
  int64_t vocab_size() const override { return 10; }
  std::string describe() const override { return "failing"; }
  uint64_t position() const override { return position_; }
  void seek(uint64_t p) override { position_ = p; }

 private:
  uint64_t failing_;
  std::atomic<uint64_t> position_{0};
};

TEST(PrefetchingDataset, AnErrorDrawingAheadSurfacesAtThatBatch) {
  PrefetchingDataset ahead(std::make_unique<FailingDataset>(2));
  ahead.next_batch(1, 4);
  ahead.next_batch(1, 4);  // batch 2 is being drawn (and fails) meanwhile
  try {
    ahead.next_batch(1, 4);
    ADD_FAILURE() << "the failed batch was handed out";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("shard 7 is unreadable"), std::string::npos) << e.what();
  }
}

TEST(PrefetchingDataset, ADroppedFailedDrawDoesNotSurface) {
  {
    PrefetchingDataset ahead(std::make_unique<FailingDataset>(1));
    ahead.next_batch(1, 4);  // batch 1 fails ahead; nobody asks for it
  }
  PrefetchingDataset reshaped(std::make_unique<FailingDataset>(1));
  reshaped.next_batch(1, 4);
  reshaped.seek(5);  // away from the failed draw
  EXPECT_NO_THROW(reshaped.next_batch(1, 4));
  EXPECT_EQ(reshaped.position(), 6u);
}

}  // namespace
}  // namespace zt::data
