// Where training batches come from. A dataset hands out (inputs, targets) token batches,
// deterministic for its seed and rank, with a position a checkpoint can save and restore.
// Shapes: B sequences of T tokens; targets[b, t] is the token after inputs[b, t].
#pragma once

#include <cstdint>
#include <string>

#include "zt/core/tensor.hpp"

namespace zt::data {

struct Batch {
  Tensor inputs;   // (B, T) int32
  Tensor targets;  // (B, T) int32
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual Batch next_batch(int64_t batch_size, int64_t seq_len) = 0;
  virtual int64_t vocab_size() const = 0;   // ids are in [0, vocab_size)
  virtual std::string describe() const = 0;
  virtual uint64_t position() const = 0;    // batches drawn so far, for resuming
  virtual void seek(uint64_t position) = 0;
  // The dataset the batches come from, through any wrappers (a prefetching one): for what only
  // the source knows, such as a synthetic corpus's entropy floor.
  virtual const Dataset& source() const { return *this; }
};

}  // namespace zt::data
