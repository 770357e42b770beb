#include "zt/data/token_dataset.hpp"

#include <algorithm>
#include <filesystem>
#include <numeric>

#include "zt/core/random.hpp"

namespace zt::data {

namespace fs = std::filesystem;

std::vector<std::string> find_token_shards(const std::string& path) {
  ZT_CHECK(fs::exists(path), "token data ", path, " does not exist");
  if (!fs::is_directory(path)) return {path};
  std::vector<std::string> found;
  for (const char* ext : {".ztok", ".bin"}) {
    for (const auto& entry : fs::directory_iterator(path))
      if (entry.is_regular_file() && entry.path().extension() == ext) found.push_back(entry.path().string());
    if (!found.empty()) break;
  }
  ZT_CHECK(!found.empty(), "token data folder ", path, " holds no .ztok or .bin shards (make some with `zt tokenize`)");
  std::sort(found.begin(), found.end());
  return found;
}

TokenDataset::TokenDataset(const std::string& path, int64_t model_vocab_size, uint64_t seed, int rank, int world_size)
    : path_(path), vocab_size_(model_vocab_size), seed_(seed), rank_(rank), world_size_(world_size) {
  ZT_CHECK(world_size >= 1 && rank >= 0 && rank < world_size, "token dataset: rank ", rank, " of ", world_size);
  for (const std::string& shard : find_token_shards(path)) {
    shards_.emplace_back(shard);
    const uint32_t shard_vocab = shards_.back().vocab_size();
    ZT_CHECK(shard_vocab == 0 || int64_t(shard_vocab) <= model_vocab_size, shard, ": its vocabulary has ", shard_vocab,
             " tokens but the model's has ", model_vocab_size, " (tokenized for another model?)");
  }
}

uint64_t TokenDataset::token_count() const {
  uint64_t n = 0;
  for (const auto& s : shards_) n += s.size();
  return n;
}

void TokenDataset::build_windows(int64_t seq_len) {
  seq_len_ = seq_len;
  windows_.clear();
  for (uint32_t s = 0; s < shards_.size(); ++s) {
    const uint64_t n = shards_[s].size();
    for (uint64_t begin = 0; begin + uint64_t(seq_len) + 1 <= n; begin += uint64_t(seq_len)) windows_.push_back({s, begin});
  }
  ZT_CHECK(windows_.size() >= uint64_t(world_size_), path_, ": ", token_count(), " tokens make ", windows_.size(),
           " windows of ", seq_len + 1, " tokens, fewer than the ", world_size_, " ranks that share them");
  cached_epoch_ = ~0ull;
}

const std::vector<uint32_t>& TokenDataset::epoch_order(uint64_t epoch) {
  if (epoch == cached_epoch_) return order_;
  order_.resize(windows_.size());
  std::iota(order_.begin(), order_.end(), 0u);
  Rng rng(seed_ * 0x9e3779b97f4a7c15ull + epoch);
  for (size_t i = order_.size(); i > 1; --i) std::swap(order_[i - 1], order_[rng.below(i)]);
  cached_epoch_ = epoch;
  return order_;
}

Batch TokenDataset::next_batch(int64_t batch_size, int64_t seq_len) {
  ZT_CHECK(batch_size > 0 && seq_len > 0, "token dataset: batch size and sequence length must be positive");
  if (seq_len != seq_len_) {
    ZT_CHECK(seq_len_ == 0, "token dataset: the sequence length changed from ", seq_len_, " to ", seq_len);
    build_windows(seq_len);
  }
  const uint64_t per_rank = windows_.size() / uint64_t(world_size_);  // windows a rank sees per epoch
  Batch batch{Tensor::empty({batch_size, seq_len}, DType::i32), Tensor::empty({batch_size, seq_len}, DType::i32)};
  std::vector<int32_t> row(size_t(seq_len + 1));
  for (int64_t b = 0; b < batch_size; ++b) {
    const uint64_t sample = batches_drawn_ * uint64_t(batch_size) + uint64_t(b);  // this rank's sample number
    const auto& order = epoch_order(sample / per_rank);
    const Window& w = windows_[order[(sample % per_rank) * uint64_t(world_size_) + uint64_t(rank_)]];
    shards_[w.shard].read(w.begin, uint64_t(seq_len + 1), row.data());
    std::copy(row.begin(), row.end() - 1, batch.inputs.data<int32_t>() + b * seq_len);
    std::copy(row.begin() + 1, row.end(), batch.targets.data<int32_t>() + b * seq_len);
  }
  ++batches_drawn_;
  return batch;
}

std::string TokenDataset::describe() const {
  return str("token shards at ", path_, " (", shards_.size(), " shards, ", token_count(), " tokens; rank ", rank_, " of ",
             world_size_, ")");
}

}  // namespace zt::data
