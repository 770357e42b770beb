// Tensor maps for the Tensor Memory Accelerator (TMA, sm_90): the description of a global 2-D
// array of bf16 rows that cp.async.bulk.tensor copies boxes of into shared memory, here always
// boxes 64 elements (128 bytes) wide with the 128-byte swizzle the wgmma tiles use (wgmma.cuh).
#pragma once

#include <cuda.h>

#include <cstdint>

namespace zt::cuda {

// rows (rows, width) bf16 at base, row stride `stride` elements; a box is (box_rows, 64).
// Elements past the last row read as zero. Throws with the cause when the driver refuses.
CUtensorMap bf16_rows_tensor_map(const void* base, int64_t rows, int64_t width, int64_t stride, int box_rows);

}  // namespace zt::cuda
