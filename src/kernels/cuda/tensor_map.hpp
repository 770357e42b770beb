// Tensor maps for the Tensor Memory Accelerator (TMA, sm_90): the description of a global array
// that cp.async.bulk.tensor copies boxes of into shared memory. Here: batches of bf16 rows,
// boxes 64 elements (128 bytes) wide with the 128-byte swizzle the wgmma tiles use (wgmma.cuh).
#pragma once

#include <cuda.h>

#include <cstdint>

namespace zt::cuda {

// (batches, rows, width) bf16 at base, rows `stride` elements apart and batches rows * stride;
// a box is (box_rows, 64) of one batch, at coordinates (column, row, batch). Rows past a batch's
// last read as zero. Throws with the cause when the driver refuses.
CUtensorMap bf16_rows_tensor_map(const void* base, int64_t batches, int64_t rows, int64_t width, int64_t stride,
                                 int box_rows);

}  // namespace zt::cuda
