#include "zt/zero/flat_layout.hpp"

#include <algorithm>

namespace zt::zero {

Range intersect(Range a, Range b) { return {std::max(a.begin, b.begin), std::max(std::max(a.begin, b.begin), std::min(a.end, b.end))}; }

FlatLayout::FlatLayout(const nn::Module& module, int world_size, int64_t alignment, int64_t bucket_elements)
    : world_size_(world_size) {
  ZT_CHECK(world_size >= 1, "FlatLayout: world size must be >= 1, got ", world_size);
  ZT_CHECK(alignment >= 1, "FlatLayout: alignment must be >= 1, got ", alignment);
  ZT_CHECK(bucket_elements >= 1, "FlatLayout: the bucket size must be >= 1 element, got ", bucket_elements);
  int64_t offset = 0;
  for (const auto& [name, p] : module.named_parameters()) {
    slot_index_[p.get()] = int(slots_.size());
    slots_.push_back({name, p, offset, p->numel(), -1});
    offset += (p->numel() + alignment - 1) / alignment * alignment;
  }
  ZT_CHECK(!slots_.empty(), "the model has no parameters to train");
  const int64_t unit = int64_t(world_size) * alignment;
  total_ = (offset + unit - 1) / unit * unit;

  // Buckets from the last parameter backwards; a parameter larger than the bucket size gets a
  // bucket of its own. The last bucket starts at 0 and the first ends at total_, so the buckets
  // tile the flat range, padding included.
  int64_t end = total_;
  std::vector<int> current;
  int64_t current_elements = 0;
  auto close = [&](int64_t begin) {
    Bucket b{{begin, end}, current};
    for (int s : current) slots_[size_t(s)].bucket = int(buckets_.size());
    buckets_.push_back(std::move(b));
    end = begin;
    current.clear();
    current_elements = 0;
  };
  for (int s = int(slots_.size()) - 1; s >= 0; --s) {
    const int64_t n = slots_[size_t(s)].numel;
    if (!current.empty() && current_elements + n > bucket_elements) close(slots_[size_t(current.back())].offset);
    current.push_back(s);
    current_elements += n;
  }
  close(0);
}

int FlatLayout::slot_of(const nn::Parameter* p) const {
  auto it = slot_index_.find(p);
  return it == slot_index_.end() ? -1 : it->second;
}

int64_t FlatLayout::parameter_count() const {
  int64_t n = 0;
  for (const auto& s : slots_) n += s.numel;
  return n;
}

std::vector<int64_t> FlatLayout::counts_by_rank(Range range) const {
  std::vector<int64_t> counts(static_cast<size_t>(world_size_));
  for (int r = 0; r < world_size_; ++r) counts[size_t(r)] = intersect(range, partition(r)).size();
  return counts;
}

}  // namespace zt::zero
