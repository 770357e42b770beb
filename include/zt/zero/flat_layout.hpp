// Where every parameter lives in the flat buffers that the ZeRO stages shard.
//
// Parameters are laid end to end in registration order, each starting at a multiple of
// `alignment` elements; the total is padded to a multiple of world_size * alignment, so the
// flat range splits into world_size equal contiguous partitions (rank r owns
// [r * P, (r + 1) * P)). A parameter may straddle partitions; the collectives' _v variants
// move each rank's intersection. Buckets are contiguous flat ranges of whole parameters, in
// reverse registration order (the order backward produces gradients), covering [0, total).
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include "zt/nn/module.hpp"

namespace zt::zero {

struct ParamSlot {
  std::string name;
  nn::ParameterPtr param;
  int64_t offset = 0;  // elements into the flat range
  int64_t numel = 0;
  int bucket = -1;
};

struct Range {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end > begin ? end - begin : 0; }
};

Range intersect(Range a, Range b);

struct Bucket {
  Range range;             // flat elements
  std::vector<int> slots;  // indices into FlatLayout::slots()
};

class FlatLayout {
 public:
  FlatLayout(const nn::Module& module, int world_size, int64_t alignment, int64_t bucket_elements);

  const std::vector<ParamSlot>& slots() const { return slots_; }
  const std::vector<Bucket>& buckets() const { return buckets_; }  // in reduction order
  int slot_of(const nn::Parameter* p) const;                        // -1 when not a parameter here
  int64_t total() const { return total_; }                          // padded
  int64_t partition_size() const { return total_ / world_size_; }
  Range partition(int rank) const { return {rank * partition_size(), (rank + 1) * partition_size()}; }
  int world_size() const { return world_size_; }
  int64_t parameter_count() const;
  // Elements of `range` that each rank's partition holds (sums to range.size()).
  std::vector<int64_t> counts_by_rank(Range range) const;

 private:
  std::vector<ParamSlot> slots_;
  std::unordered_map<const nn::Parameter*, int> slot_index_;
  std::vector<Bucket> buckets_;
  int64_t total_ = 0;
  int world_size_;
};

}  // namespace zt::zero
