// The built-in synthetic corpus: token streams from a seeded random first-order Markov chain.
// Its entropy rate H = sum_i pi_i * H(P[i, :]) (pi the stationary distribution) is the lowest
// mean cross-entropy any model can reach on it, so every run can say how close it got.
#pragma once

#include <vector>

#include "zt/core/random.hpp"
#include "zt/data/dataset.hpp"

namespace zt::data {

struct MarkovCorpusOptions {
  int64_t vocab_size = 256;   // V
  int64_t successors = 8;     // non-zero transitions out of each token
  double sharpness = 1.0;     // log-weights ~ N(0, sharpness^2): higher is more predictable
  uint64_t seed = 1234;       // the chain itself (the same for every rank)
  uint64_t stream_seed = 0;   // which samples are drawn (rank and run dependent)
};

class MarkovCorpus : public Dataset {
 public:
  explicit MarkovCorpus(const MarkovCorpusOptions& options);
  Batch next_batch(int64_t batch_size, int64_t seq_len) override;
  int64_t vocab_size() const override { return options_.vocab_size; }
  std::string describe() const override;
  uint64_t position() const override { return batches_drawn_; }
  void seek(uint64_t position) override;

  double entropy_rate() const { return entropy_rate_; }  // nats per token
  const std::vector<double>& stationary() const { return stationary_; }
  // P(next = j | current = i) (0 when j is not a successor of i).
  double transition(int64_t i, int64_t j) const;

 private:
  int64_t sample_next(int64_t current, Rng& rng) const;
  Rng batch_rng(uint64_t index) const;

  MarkovCorpusOptions options_;
  std::vector<int32_t> next_token_;  // (V, successors)
  std::vector<double> cumulative_;   // (V, successors): running sums of the probabilities
  std::vector<double> stationary_;   // (V)
  std::vector<double> stationary_below_;  // (V) sum of stationary_ over the tokens before each one
  double entropy_rate_ = 0;
  uint64_t batches_drawn_ = 0;
};

}  // namespace zt::data
