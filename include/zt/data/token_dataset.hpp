// Training batches from token shards (.ztok, or llm.c's .bin) with a distributed sampler.
//
// Each shard is cut into windows of T + 1 tokens that start every T tokens; a window gives one
// row (inputs = its first T tokens, targets = its last T). Windows never cross shards. Every
// epoch visits all windows in an order shuffled by (seed, epoch); rank r of W takes the
// windows at positions r, r + W, r + 2W, ... of that order, so ranks see disjoint data, and
// batch k of a rank depends only on (seed, rank, W, k): seek(k) resumes exactly.
#pragma once

#include <memory>
#include <vector>

#include "zt/data/dataset.hpp"
#include "zt/data/token_shard.hpp"

namespace zt::data {

class TokenDataset : public Dataset {
 public:
  // path: one shard file, or a folder whose *.ztok (else *.bin) files are the shards, in name order.
  TokenDataset(const std::string& path, int64_t model_vocab_size, uint64_t seed, int rank, int world_size);
  Batch next_batch(int64_t batch_size, int64_t seq_len) override;
  int64_t vocab_size() const override { return vocab_size_; }
  std::string describe() const override;
  uint64_t position() const override { return batches_drawn_; }
  void seek(uint64_t position) override { batches_drawn_ = position; }

  uint64_t token_count() const;
  uint64_t window_count() const { return windows_.size(); }  // after the first batch

 private:
  struct Window {
    uint32_t shard;
    uint64_t begin;
  };
  void build_windows(int64_t seq_len);
  const std::vector<uint32_t>& epoch_order(uint64_t epoch);

  std::string path_;
  std::vector<TokenShardReader> shards_;
  int64_t vocab_size_;
  uint64_t seed_;
  int rank_, world_size_;
  int64_t seq_len_ = 0;
  std::vector<Window> windows_;
  uint64_t cached_epoch_ = ~0ull;
  std::vector<uint32_t> order_;
  uint64_t batches_drawn_ = 0;
};

// The shard files a path names (a file, or a folder's *.ztok, else *.bin files), sorted.
std::vector<std::string> find_token_shards(const std::string& path);

}  // namespace zt::data
