#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "zt/data/markov_corpus.hpp"

namespace zt::data {
namespace {

TEST(MarkovCorpus, TransitionRowsSumToOne) {
  MarkovCorpus corpus({32, 5, 1.0, 7, 0});
  for (int64_t i = 0; i < 32; ++i) {
    double s = 0;
    for (int64_t j = 0; j < 32; ++j) s += corpus.transition(i, j);
    EXPECT_NEAR(s, 1.0, 1e-12);
  }
}

TEST(MarkovCorpus, StationaryDistributionIsFixedUnderTheChain) {
  MarkovCorpus corpus({40, 6, 1.5, 3, 0});
  const auto& pi = corpus.stationary();
  for (int64_t j = 0; j < 40; ++j) {
    double next = 0;
    for (int64_t i = 0; i < 40; ++i) next += pi[size_t(i)] * corpus.transition(i, j);
    EXPECT_NEAR(next, pi[size_t(j)], 1e-9);
  }
}

// The empirical conditional entropy of sampled bigrams approaches the computed entropy rate.
TEST(MarkovCorpus, SampledBigramsMatchTheEntropyRate) {
  MarkovCorpus corpus({16, 4, 1.0, 11, 0});
  std::map<std::pair<int, int>, double> pair_count;
  std::map<int, double> count;
  for (int step = 0; step < 50; ++step) {
    Batch b = corpus.next_batch(32, 128);
    const int32_t* in = b.inputs.data<int32_t>();
    const int32_t* out = b.targets.data<int32_t>();
    for (int64_t i = 0; i < b.inputs.numel(); ++i) {
      pair_count[{in[i], out[i]}] += 1;
      count[in[i]] += 1;
    }
  }
  double total = 0, h = 0;
  for (const auto& [k, c] : count) total += c;
  for (const auto& [k, c] : pair_count) h -= c / total * std::log(c / count[k.first]);
  EXPECT_NEAR(h, corpus.entropy_rate(), 0.02);
}

TEST(MarkovCorpus, TargetsAreTheNextInputs) {
  MarkovCorpus corpus({64, 8, 1.0, 1, 0});
  Batch b = corpus.next_batch(4, 20);
  for (int64_t r = 0; r < 4; ++r)
    for (int64_t t = 0; t + 1 < 20; ++t)
      EXPECT_EQ(b.targets.data<int32_t>()[r * 20 + t], b.inputs.data<int32_t>()[r * 20 + t + 1]);
}

TEST(MarkovCorpus, SeekReplaysTheSameBatches) {
  MarkovCorpus a({64, 8, 1.0, 1, 5}), b({64, 8, 1.0, 1, 5});
  a.next_batch(2, 8);
  const Batch second = a.next_batch(2, 8);
  b.seek(1);
  const Batch replay = b.next_batch(2, 8);
  EXPECT_EQ(second.inputs.to_floats(), replay.inputs.to_floats());
  MarkovCorpus other_stream({64, 8, 1.0, 1, 6});
  other_stream.seek(1);
  EXPECT_NE(other_stream.next_batch(2, 8).inputs.to_floats(), replay.inputs.to_floats());
}

TEST(MarkovCorpus, BadOptionsAreErrors) {
  EXPECT_THROW(MarkovCorpus({1, 1, 1.0, 0, 0}), Error);
  EXPECT_THROW(MarkovCorpus({8, 9, 1.0, 0, 0}), Error);
}

}  // namespace
}  // namespace zt::data
