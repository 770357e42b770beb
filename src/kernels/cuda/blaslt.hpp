// cuBLASLt for the matmul kernels: one handle per device and one workspace per stream, created on
// first use, and a column-major GEMM with an epilogue whose algorithm choice is cached by problem.
#pragma once

#include <cublasLt.h>

#include <cstdint>
#include <map>
#include <mutex>

#include "zt/core/error.hpp"

#define ZT_CUBLAS_CHECK(call)                                                                             \
  do {                                                                                                    \
    const cublasStatus_t zt_cublas_status_ = (call);                                                      \
    if (zt_cublas_status_ != CUBLAS_STATUS_SUCCESS)                                                       \
      ::zt::detail::throw_error(__FILE__, __LINE__, ::zt::str("cuBLASLt call ", #call, " failed: ",       \
                                                              cublasLtGetStatusString(zt_cublas_status_))); \
  } while (0)

namespace zt::cuda {

struct BlasLtContext {
  cublasLtHandle_t handle = nullptr;
  size_t workspace_bytes = 0;

  // The workspace of products queued on stream (products on two streams run at once, so they may
  // not share one); allocated on first use, it lives as long as the process.
  void* workspace(cudaStream_t stream);

 private:
  std::mutex mutex_;
  std::map<cudaStream_t, void*> workspaces_;
};

// The current device's context.
BlasLtContext& blaslt_context();

// D (m, n) = alpha * op(A) op(B) + beta * D, column-major with leading dimensions, then the
// epilogue: bias (m) added per row of D; GELU with aux (m, n), leading dimension ld_aux,
// receiving the value before it; or, with dgelu, D multiplied by GELU's derivative at aux (the
// backward through a GELU whose input aux holds). Elements of type T (float: fp32 arithmetic throughout;
// bf16: fp32 accumulation).
struct GemmProblem {
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  const void* a = nullptr;
  int64_t lda = 0;
  const void* b = nullptr;
  int64_t ldb = 0;
  void* d = nullptr;
  int64_t ldd = 0;
  float beta = 0.0f;
  const void* c = nullptr;  // with beta != 0: the C that D = A B + beta C reads (d itself when null; d's layout)
  const void* bias = nullptr;
  bool gelu = false;
  bool dgelu = false;
  void* aux = nullptr;
  int64_t ld_aux = 0;
};

template <class T>
void gemm(const GemmProblem& p);

}  // namespace zt::cuda
