// The wgmma attention backward's block order (flash_backward_wgmma.cu; docs/CUDA_NOTES.md v14),
// as plain integer arithmetic that the kernel and a host-side test share.
//
// The grid is `columns` units of a key/value head (and split) by `rows` key blocks, row 0 the
// longest. Blocks start in windows of `window` columns one after another: within a window every
// column's row 0, then every column's row 1, and so on; the last window may be narrower. A window
// as wide as the grid is the grid's own order (row-major, longest first throughout). Narrower
// windows keep fewer heads' dQ accumulators (and query tiles) in use at once, so that they can
// stay in L2, and each window's tail is filled by the next one's longest blocks.
#pragma once

#if defined(__CUDACC__)
#define ZT_BLOCK_WINDOWS_FN __host__ __device__ __forceinline__
#else
#define ZT_BLOCK_WINDOWS_FN inline
#endif

namespace zt::cuda {

struct GridPlace {
  int column, row;
};

// Where the block that starts `linear`-th (blockIdx.x + blockIdx.y * columns) works.
ZT_BLOCK_WINDOWS_FN GridPlace windowed_place(int linear, int columns, int rows, int window) {
  const int first = linear / (window * rows) * window;  // the window's first column
  const int width = window < columns - first ? window : columns - first;
  const int within = linear - first * rows;
  return {first + within % width, within / width};
}

// The window: `tuned` columns where it is > 0, else as many as 2 waves of `resident` blocks
// (the blocks the device holds at once) take; at most the grid's width.
inline int window_columns(int columns, int rows, int resident, int tuned) {
  const int window = tuned > 0 ? tuned : (2 * resident + rows - 1) / rows;
  return window < columns ? window : columns;
}

}  // namespace zt::cuda

#undef ZT_BLOCK_WINDOWS_FN
