// A dataset that draws the next batch on a worker thread while the caller trains on the one it
// was just handed, as a data loader's worker does: the same batches in the same order as the
// dataset it wraps, and that dataset's positions (the batch drawn ahead does not count until it
// is handed out). A request for another batch shape than the one drawn ahead puts the wrapped
// dataset back and draws that shape instead. An error drawing a batch ahead surfaces when that
// batch is asked for; one never asked for is dropped. Shapes: B sequences of T tokens.
#pragma once

#include <future>
#include <memory>
#include <optional>

#include "zt/data/dataset.hpp"

namespace zt::data {

class PrefetchingDataset : public Dataset {
 public:
  explicit PrefetchingDataset(std::unique_ptr<Dataset> inner);
  ~PrefetchingDataset() override;
  PrefetchingDataset(const PrefetchingDataset&) = delete;
  PrefetchingDataset& operator=(const PrefetchingDataset&) = delete;

  Batch next_batch(int64_t batch_size, int64_t seq_len) override;
  int64_t vocab_size() const override { return inner_->vocab_size(); }
  std::string describe() const override { return inner_->describe(); }
  uint64_t position() const override { return handed_; }
  void seek(uint64_t position) override;
  const Dataset& source() const override { return inner_->source(); }

 private:
  // Waits for the batch drawn ahead, if any, and returns it when it has this shape; otherwise
  // (none, another shape, or its draw failed with another shape) leaves the wrapped dataset at
  // the position handed out and returns nothing.
  std::optional<Batch> take_ahead(int64_t batch_size, int64_t seq_len);
  void drop_ahead();  // waits for the batch drawn ahead and forgets it (and its error)

  std::unique_ptr<Dataset> inner_;
  std::future<Batch> ahead_;      // the next batch, being drawn
  int64_t ahead_batch_ = 0, ahead_seq_ = 0;
  uint64_t handed_ = 0;           // the wrapped dataset's position after the last batch handed out
};

}  // namespace zt::data
