#include "zt/data/prefetching_dataset.hpp"

#include "zt/core/error.hpp"

namespace zt::data {

PrefetchingDataset::PrefetchingDataset(std::unique_ptr<Dataset> inner) : inner_(std::move(inner)) {
  ZT_CHECK(inner_ != nullptr, "PrefetchingDataset: no dataset to wrap");
  handed_ = inner_->position();
}

PrefetchingDataset::~PrefetchingDataset() { drop_ahead(); }

void PrefetchingDataset::drop_ahead() {
  if (!ahead_.valid()) return;
  try {
    ahead_.get();
  } catch (...) {
    // The batch drawn ahead, and any error drawing it, belong to no request now.
  }
}

std::optional<Batch> PrefetchingDataset::take_ahead(int64_t batch_size, int64_t seq_len) {
  if (!ahead_.valid()) return std::nullopt;
  if (ahead_batch_ == batch_size && ahead_seq_ == seq_len) return ahead_.get();  // rethrows its error
  drop_ahead();
  inner_->seek(handed_);
  return std::nullopt;
}

Batch PrefetchingDataset::next_batch(int64_t batch_size, int64_t seq_len) {
  std::optional<Batch> ahead = take_ahead(batch_size, seq_len);
  Batch out = ahead ? std::move(*ahead) : inner_->next_batch(batch_size, seq_len);
  handed_ = inner_->position();
  ahead_batch_ = batch_size, ahead_seq_ = seq_len;
  ahead_ = std::async(std::launch::async, [this, batch_size, seq_len] { return inner_->next_batch(batch_size, seq_len); });
  return out;
}

void PrefetchingDataset::seek(uint64_t position) {
  drop_ahead();
  inner_->seek(position);
  handed_ = position;
}

}  // namespace zt::data
