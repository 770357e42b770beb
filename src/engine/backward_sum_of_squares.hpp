// The gradients' sum of squares for the clip, taken during the backward that ends an accumulation
// window: slice by slice as the slots' gradients become final, on a side stream beside the
// backward's products, instead of one pass over the whole buffer between the backward and the
// update (Llama 1.1B: 2.2 GB, ~0.5 ms a step on the step's path). Each slice is read soon after
// its gradient was written. Only where a slot's gradient is final when its parameter reports it
// (one rank, ZeRO stages 0 and 1: no reduction follows).
//
//   BackwardSumOfSquares sums(slot_ranges, gradients);  // gradients: the flat buffer (total)
//   sums.begin(boundary);      // before each backward: only the window's last one sums
//   sums.slot_final(s);        // as each slot's gradient is final, in any order
//   sums.finish();             // after the backward: total() is queued, ready() is true
//   clip.queue(grads, max_norm, denominator, step, &sums.total());
//   sums.taken();              // ready() is false until the next window's sums (or replayed())
//
// Slots next to each other in the layout make one slice (the alignment padding between them
// holds zeros); a slice is queued once it holds slice_elements, or when the next final slot is not
// its neighbour. Slots never reported are not read: at the window's end they hold zeros (the
// reducer clears what no backward wrote). The slices' partial sums are added in slice order, so
// the total is the same from run to run.
#pragma once

#include <cstdint>
#include <vector>

#include "zt/core/side_stream.hpp"
#include "zt/core/tensor.hpp"
#include "zt/zero/flat_layout.hpp"

namespace zt::engine {

class BackwardSumOfSquares {
 public:
  // slots: each slot's [begin, end) in gradients, in layout order (ascending, not overlapping).
  // slice_elements: the size at which a slice is queued (4M elements: 8 MB of bf16, which L2 holds).
  BackwardSumOfSquares(std::vector<zero::Range> slots, Tensor gradients, int64_t slice_elements = int64_t(1) << 22);

  void begin(bool window_ends);
  void slot_final(int slot);
  void finish();
  bool ready() const { return ready_; }
  const Tensor& total() const { return total_; }  // f64 (1) on the gradients' device
  void taken() { ready_ = false; }
  // The window's backwards ran as a CUDA graph's replay, whose kernels took the sums as the
  // captured ones did.
  void replayed() { ready_ = true; }
  int64_t slices() const { return slices_; }  // queued by the last window's backward

 private:
  void queue_slice();  // the open slice's sum into parts_[slices_]

  std::vector<zero::Range> slots_;
  Tensor gradients_;
  int64_t slice_elements_;
  SideStream side_;
  Tensor parts_;   // f64 (slots): a partial sum per slice
  Tensor total_;   // f64 (1)
  std::vector<char> reported_;  // per slot, this window
  bool active_ = false, ready_ = false;
  int64_t slices_ = 0;
  // The open slice: slots first..last, with their elements so far.
  bool open_ = false;
  int first_ = 0, last_ = 0;
  int64_t open_elements_ = 0;
};

}  // namespace zt::engine
