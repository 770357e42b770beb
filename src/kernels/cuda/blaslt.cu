#include "blaslt.hpp"

#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include "blaslt_search.hpp"
#include "common.cuh"
#include "zt/core/env.hpp"

namespace zt::cuda {

namespace {

constexpr size_t kWorkspaceBytes = size_t(32) << 20;

// The largest power of two, up to 256, that divides the address.
uint32_t alignment_of(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  uint32_t al = 256;
  while (al > 1 && a % al) al >>= 1;
  return al;
}

template <class T> constexpr cudaDataType_t data_type();
template <> constexpr cudaDataType_t data_type<float>() { return CUDA_R_32F; }
template <> constexpr cudaDataType_t data_type<bf16>() { return CUDA_R_16BF; }

using AlgoKey = std::tuple<int, int, bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int, uint32_t,
                           uint32_t, uint32_t, uint32_t, bool>;

// Candidates timed when a problem is met first (ZT_GEMM_AUTOTUNE, on by default): cuBLASLt's
// heuristic ranks algorithms by a model, and its first choice is not always the fastest at
// training shapes. ZT_GEMM_SEARCH (blaslt_search.hpp) says how many are timed.
constexpr int kCandidates = 8;

bool gemm_autotune() {
  static const bool on = env_bool("ZT_GEMM_AUTOTUNE", true);
  return on;
}

}  // namespace

BlasLtContext& blaslt_context() {
  static std::mutex mutex;
  static std::map<int, std::unique_ptr<BlasLtContext>> contexts;  // never freed: lives with the process
  int device = 0;
  ZT_CUDA_CHECK(cudaGetDevice(&device));
  std::lock_guard<std::mutex> lock(mutex);
  auto& slot = contexts[device];
  if (!slot) {
    auto c = std::make_unique<BlasLtContext>();
    ZT_CUBLAS_CHECK(cublasLtCreate(&c->handle));
    c->workspace_bytes = kWorkspaceBytes;
    slot = std::move(c);
  }
  return *slot;
}

void* BlasLtContext::workspace(cudaStream_t stream) {
  std::lock_guard<std::mutex> lock(mutex_);
  void*& slot = workspaces_[stream];
  if (!slot) ZT_CUDA_CHECK(cudaMalloc(&slot, workspace_bytes));
  return slot;
}

template <class T>
void gemm(const GemmProblem& p) {
  if (p.m == 0 || p.n == 0) return;
  BlasLtContext& ctx = blaslt_context();
  const cudaDataType_t type = data_type<T>();
  GemmDescriptors desc;
  ZT_CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t ta = p.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, tb = p.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  ZT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
  ZT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
  cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  if (p.gelu) epilogue = p.bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX;
  else if (p.dgelu) epilogue = CUBLASLT_EPILOGUE_DGELU;
  else if (p.bias) epilogue = CUBLASLT_EPILOGUE_BIAS;
  ZT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue));
  if (p.bias) {
    ZT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &p.bias, sizeof p.bias));
    const cudaDataType_t bias_type = type;
    ZT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc.op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type,
                                                   sizeof bias_type));
  }
  if (p.gelu || p.dgelu) {
    ZT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc.op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &p.aux,
                                                   sizeof p.aux));
    ZT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc.op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &p.ld_aux,
                                                   sizeof p.ld_aux));
  }
  // Stored shapes: op(A) is (m, k), op(B) is (k, n).
  ZT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&desc.a, type, p.trans_a ? p.k : p.m, p.trans_a ? p.m : p.k, p.lda));
  ZT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&desc.b, type, p.trans_b ? p.n : p.k, p.trans_b ? p.k : p.n, p.ldb));
  ZT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&desc.d, type, p.m, p.n, p.ldd));

  const uint32_t align_a = alignment_of(p.a), align_b = alignment_of(p.b);
  const uint32_t align_d = std::min(alignment_of(p.d), p.c ? alignment_of(p.c) : alignment_of(p.d));  // C's too
  const uint32_t align_bias = p.bias ? alignment_of(p.bias) : 256;
  int device = 0;
  ZT_CUDA_CHECK(cudaGetDevice(&device));
  const AlgoKey key{device, int(type), p.trans_a, p.trans_b, p.m, p.n, p.k, p.lda, p.ldb, p.ldd, int(epilogue),
                    align_a, align_b, align_d, align_bias, p.beta != 0.0f};
  static std::mutex mutex;
  static std::map<AlgoKey, cublasLtMatmulAlgo_t> algos;
  cublasLtMatmulAlgo_t algo;
  bool found = false;
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = algos.find(key);
    if (it != algos.end()) algo = it->second, found = true;
  }
  if (!found) {
    ZT_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&desc.preference));
    auto set = [&](cublasLtMatmulPreferenceAttributes_t attr, auto value) {
      ZT_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(desc.preference, attr, &value, sizeof value));
    };
    set(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, uint64_t(ctx.workspace_bytes));
    set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, align_a);
    set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, align_b);
    set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, align_d);
    set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, align_d);
    const std::vector<GemmAlgo> candidates =
        gemm_candidates(ctx, desc, type, epilogue, gemm_autotune() ? gemm_search() : GemmSearch::heuristic,
                        gemm_autotune() ? kCandidates : 1);
    ZT_CHECK(!candidates.empty(), "cuBLASLt has no algorithm for a ", p.m, "x", p.n, "x", p.k, " GEMM (epilogue ",
             int(epilogue), ", alignments ", align_a, "/", align_b, "/", align_d, ")");
    algo = fastest_algo(ctx, desc, p, candidates);
    std::lock_guard<std::mutex> lock(mutex);
    algos[key] = algo;
  }
  const float alpha = 1.0f, beta = p.beta;
  ZT_CUBLAS_CHECK(cublasLtMatmul(ctx.handle, desc.op, &alpha, p.a, desc.a, p.b, desc.b, &beta, p.c ? p.c : p.d, desc.d, p.d,
                                 desc.d, &algo, ctx.workspace(compute_stream()), ctx.workspace_bytes,
                                 compute_stream()));
}

template void gemm<float>(const GemmProblem&);
template void gemm<bf16>(const GemmProblem&);

}  // namespace zt::cuda
