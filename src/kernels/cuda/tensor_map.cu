#include "tensor_map.hpp"

#include <cudaTypedefs.h>

#include "common.cuh"

namespace zt::cuda {

namespace {

// cuTensorMapEncodeTiled from the driver, through the runtime (no link-time dependency on libcuda).
PFN_cuTensorMapEncodeTiled_v12000 encode_tiled() {
  static const PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
    ZT_CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &found));
    ZT_CHECK(found == cudaDriverEntryPointSuccess && f, "the CUDA driver has no cuTensorMapEncodeTiled (TMA needs 12.0+)");
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
  }();
  return fn;
}

}  // namespace

CUtensorMap bf16_rows_tensor_map(const void* base, int64_t batches, int64_t rows, int64_t width, int64_t stride,
                                 int box_rows) {
  CUtensorMap map;
  const cuuint64_t dims[3] = {cuuint64_t(width), cuuint64_t(rows), cuuint64_t(batches)};
  const cuuint64_t strides[2] = {cuuint64_t(stride) * 2, cuuint64_t(rows * stride) * 2};  // bytes
  const cuuint32_t box[3] = {64, cuuint32_t(box_rows), 1};
  const cuuint32_t element_strides[3] = {1, 1, 1};
  const CUresult r = encode_tiled()(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, const_cast<void*>(base), dims, strides,
                                    box, element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                    CU_TENSOR_MAP_L2_PROMOTION_L2_128B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  ZT_CHECK(r == CUDA_SUCCESS, "cuTensorMapEncodeTiled failed (error ", int(r), ") for (", batches, ", ", rows, ", ",
           width, ") bf16, row stride ", stride, ", box (", box_rows, ", 64) at ", base);
  return map;
}

}  // namespace zt::cuda
