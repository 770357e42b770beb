// A bf16 product of zt's own on Hopper's warpgroup instructions (wgmma, sm_90a), for the products
// whose epilogues cuBLASLt fuses at a cost: GELU with its pre-activation, and GELU's derivative on the
// input gradient (docs/CUDA_NOTES.md v17, v18). Row-major tensors throughout:
//
//   out (M, N) = epilogue(A (M, K) B^T + bias (N)),
//
// B given as (N, K) rows (K-major, out_in weights) or as (K, N) rows (MN-major, in_out weights).
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace zt::cuda {

enum class WgmmaEpilogue {
  plain,  // out = A B^T (+ bias) (+ residual)
  gelu,   // pre_act = A B^T (+ bias); out = gelu(pre_act)
  dgelu,  // out = A B^T * gelu'(aux): the gradient through a GELU whose input aux holds
};

// How the epilogue stages a consumer's tile in shared memory: in two 64-row halves (6 ring stages),
// or whole (5 stages; the aux or residual copied in by the TMA during the products).
enum class WgmmaStaging { from_env, halves, whole };

struct WgmmaGemm {
  __nv_bfloat16* out = nullptr;
  __nv_bfloat16* pre_act = nullptr;  // gelu's
  const __nv_bfloat16* aux = nullptr;  // dgelu's (M, N)
  const __nv_bfloat16* bias = nullptr;  // (N), or null
  const __nv_bfloat16* residual = nullptr;  // plain's (M, N), or null
  const __nv_bfloat16* a = nullptr;  // (M, K)
  const __nv_bfloat16* b = nullptr;  // (N, K), or with b_mn_major (K, N)
  bool b_mn_major = false;
  int64_t m = 0, n = 0, k = 0;
  WgmmaEpilogue epilogue = WgmmaEpilogue::plain;
  // Blocks a cluster, sharing B's tiles (1 or 2); 0: ZT_GEMM_CLUSTER's choice, else 1.
  int cluster = 0;
  WgmmaStaging staging = WgmmaStaging::from_env;  // ZT_GEMM_STAGING = halves (the default) | whole
};

// Whether the kernel takes p here: a Hopper GPU and a build for sm_90a; N and K multiples of 8;
// every pointer 16-byte aligned; M, N, K and the count of (128 x 128 tile, 64-wide k-block)
// pairs below 2^31.
bool wgmma_gemm_fits(const WgmmaGemm& p);
// Queues the product on the compute stream; p must fit.
void wgmma_gemm(const WgmmaGemm& p);

}  // namespace zt::cuda
