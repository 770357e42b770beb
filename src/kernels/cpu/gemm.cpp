// Row-major GEMM through OpenBLAS's CBLAS.
#include <cblas.h>

#include "cpu_ops.hpp"

namespace zt::cpu {

template <>
void gemm<float>(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                 int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, int(m), int(n),
              int(k), alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
}

template <>
void gemm<double>(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
                  int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, int(m), int(n),
              int(k), alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
}

template <>
void gemv_transposed<float>(int64_t m, int64_t n, float alpha, const float* a, int64_t lda, const float* x, float beta,
                            float* y) {
  cblas_sgemv(CblasRowMajor, CblasTrans, int(m), int(n), alpha, a, int(lda), x, 1, beta, y, 1);
}

template <>
void gemv_transposed<double>(int64_t m, int64_t n, double alpha, const double* a, int64_t lda, const double* x,
                             double beta, double* y) {
  cblas_dgemv(CblasRowMajor, CblasTrans, int(m), int(n), alpha, a, int(lda), x, 1, beta, y, 1);
}

}  // namespace zt::cpu
