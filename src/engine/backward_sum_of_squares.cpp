#include "backward_sum_of_squares.hpp"

#include <algorithm>

#include "zt/kernels/ops.hpp"

namespace zt::engine {

BackwardSumOfSquares::BackwardSumOfSquares(std::vector<zero::Range> slots, Tensor gradients, int64_t slice_elements)
    : slots_(std::move(slots)), gradients_(std::move(gradients)), slice_elements_(slice_elements),
      side_(gradients_.device()), reported_(slots_.size(), 0) {
  ZT_CHECK(slice_elements_ > 0, "BackwardSumOfSquares: slice_elements must be positive, got ", slice_elements_);
  for (size_t s = 0; s < slots_.size(); ++s) {
    const zero::Range r = slots_[s];
    ZT_CHECK(r.begin >= 0 && r.end >= r.begin && r.end <= gradients_.numel() && (s == 0 || r.begin >= slots_[s - 1].end),
             "BackwardSumOfSquares: slot ", s, " [", r.begin, ", ", r.end, ") is not inside the gradients (",
             gradients_.numel(), ") after the slot before it");
  }
  parts_ = Tensor::zeros({std::max<int64_t>(1, int64_t(slots_.size()))}, DType::f64, gradients_.device());
  total_ = Tensor::zeros({1}, DType::f64, gradients_.device());
}

void BackwardSumOfSquares::begin(bool window_ends) {
  active_ = window_ends;
  ready_ = false;
  slices_ = 0;
  open_ = false;
  std::fill(reported_.begin(), reported_.end(), char(0));
}

void BackwardSumOfSquares::slot_final(int slot) {
  if (!active_) return;
  ZT_CHECK(slot >= 0 && size_t(slot) < slots_.size(), "BackwardSumOfSquares: no slot ", slot, " (", slots_.size(),
           " slots)");
  ZT_CHECK(!reported_[size_t(slot)], "BackwardSumOfSquares: slot ", slot, " reported final twice in one backward");
  reported_[size_t(slot)] = 1;
  if (open_ && slot == first_ - 1) first_ = slot;
  else if (open_ && slot == last_ + 1) last_ = slot;
  else {
    queue_slice();
    open_ = true, first_ = last_ = slot, open_elements_ = 0;
  }
  open_elements_ += slots_[size_t(slot)].size();
  if (open_elements_ >= slice_elements_) queue_slice();
}

void BackwardSumOfSquares::queue_slice() {
  if (!open_) return;
  open_ = false;
  const int64_t begin = slots_[size_t(first_)].begin, end = slots_[size_t(last_)].end;
  // The side stream starts after the compute stream's work so far: the slice's gradients are written.
  side_.fork();
  side_.run([&] {
    ops::sum_squares_into(parts_.view(size_t(slices_), {1}), gradients_.view(size_t(begin), {end - begin}));
  });
  ++slices_;
}

void BackwardSumOfSquares::finish() {
  if (!active_) return;
  active_ = false;
  queue_slice();
  side_.run([&] { ops::sum_into(total_, parts_.view(0, {slices_})); });
  side_.join();
  ready_ = true;
}

}  // namespace zt::engine
