#include "zt/data/markov_corpus.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace zt::data {

MarkovCorpus::MarkovCorpus(const MarkovCorpusOptions& options) : options_(options) {
  const int64_t v = options.vocab_size, k = options.successors;
  ZT_CHECK(v >= 2, "Markov corpus: vocab_size must be at least 2, got ", v);
  ZT_CHECK(k >= 1 && k <= v, "Markov corpus: successors must be in [1, ", v, "], got ", k);
  Rng rng(options.seed);
  next_token_.resize(size_t(v * k));
  cumulative_.resize(size_t(v * k));
  std::vector<int32_t> all(static_cast<size_t>(v));
  for (int64_t i = 0; i < v; ++i) {
    std::iota(all.begin(), all.end(), 0);
    // The first k of a partial Fisher-Yates shuffle: k distinct successors.
    for (int64_t j = 0; j < k; ++j) std::swap(all[size_t(j)], all[size_t(j + int64_t(rng.below(uint64_t(v - j))))]);
    std::vector<double> w(static_cast<size_t>(k));
    double total = 0;
    for (auto& x : w) total += (x = std::exp(options.sharpness * rng.normal()));
    double running = 0;
    for (int64_t j = 0; j < k; ++j) {
      next_token_[size_t(i * k + j)] = all[size_t(j)];
      running += w[size_t(j)] / total;
      cumulative_[size_t(i * k + j)] = running;
    }
    cumulative_[size_t(i * k + k - 1)] = 1.0;
  }
  // Stationary distribution by power iteration (lazy chain, so that periodic chains converge too).
  stationary_.assign(size_t(v), 1.0 / double(v));
  std::vector<double> next(static_cast<size_t>(v));
  for (int iter = 0; iter < 10000; ++iter) {
    std::fill(next.begin(), next.end(), 0.0);
    for (int64_t i = 0; i < v; ++i) {
      next[size_t(i)] += 0.5 * stationary_[size_t(i)];
      for (int64_t j = 0; j < k; ++j)
        next[size_t(next_token_[size_t(i * k + j)])] += 0.5 * stationary_[size_t(i)] * transition(i, next_token_[size_t(i * k + j)]);
    }
    double change = 0;
    for (int64_t i = 0; i < v; ++i) change += std::fabs(next[size_t(i)] - stationary_[size_t(i)]);
    stationary_.swap(next);
    if (change < 1e-13) break;
  }
  stationary_below_.assign(size_t(v), 0.0);
  for (int64_t i = 1; i < v; ++i) stationary_below_[size_t(i)] = stationary_below_[size_t(i - 1)] + stationary_[size_t(i - 1)];
  for (int64_t i = 0; i < v; ++i) {
    double h = 0;
    for (int64_t j = 0; j < k; ++j) {
      const double p = transition(i, next_token_[size_t(i * k + j)]);
      if (p > 0) h -= p * std::log(p);
    }
    entropy_rate_ += stationary_[size_t(i)] * h;
  }
}

double MarkovCorpus::transition(int64_t i, int64_t j) const {
  const int64_t k = options_.successors;
  for (int64_t s = 0; s < k; ++s) {
    if (next_token_[size_t(i * k + s)] != j) continue;
    const double hi = cumulative_[size_t(i * k + s)];
    const double lo = s ? cumulative_[size_t(i * k + s - 1)] : 0.0;
    return hi - lo;
  }
  return 0.0;
}

int64_t MarkovCorpus::sample_next(int64_t current, Rng& rng) const {
  const int64_t k = options_.successors;
  const double* c = cumulative_.data() + current * k;
  const double u = rng.uniform();
  const int64_t s = std::upper_bound(c, c + k, u) - c;
  return next_token_[size_t(current * k + std::min(s, k - 1))];
}

// Each batch has its own generator, derived from the stream seed and the batch index, so that
// seek() is exact and cheap.
Rng MarkovCorpus::batch_rng(uint64_t index) const {
  return Rng(options_.seed * 0x9e3779b97f4a7c15ull ^ (options_.stream_seed + 1) * 0xc2b2ae3d27d4eb4full ^ index);
}

Batch MarkovCorpus::next_batch(int64_t batch_size, int64_t seq_len) {
  ZT_CHECK(batch_size > 0 && seq_len > 0, "Markov corpus: batch size and sequence length must be positive, got ",
           batch_size, " and ", seq_len);
  Rng rng = batch_rng(batches_drawn_++);
  Batch batch{Tensor::empty({batch_size, seq_len}, DType::i32), Tensor::empty({batch_size, seq_len}, DType::i32)};
  int32_t* in = batch.inputs.data<int32_t>();
  int32_t* out = batch.targets.data<int32_t>();
  for (int64_t b = 0; b < batch_size; ++b) {
    // Start each row from the stationary distribution: rows are windows of an endless stream. The
    // token whose cumulative range holds u, by bisection (a linear walk of 50,257 tokens a row
    // took longer than the GPU's optimizer step).
    const double u = rng.uniform();
    const auto above = std::upper_bound(stationary_below_.begin() + 1, stationary_below_.end(), u);
    int64_t token = int64_t(above - stationary_below_.begin()) - 1;
    for (int64_t t = 0; t < seq_len; ++t) {
      in[b * seq_len + t] = int32_t(token);
      token = sample_next(token, rng);
      out[b * seq_len + t] = int32_t(token);
    }
  }
  return batch;
}

void MarkovCorpus::seek(uint64_t position) { batches_drawn_ = position; }

std::string MarkovCorpus::describe() const {
  return str("synthetic Markov corpus (V=", options_.vocab_size, ", ", options_.successors,
             " successors per token, entropy floor ", entropy_rate_, " nats/token)");
}

}  // namespace zt::data
