// Choosing a cuBLASLt algorithm for one GEMM problem: which candidates to consider and which of
// them runs fastest on this device.
//
// ZT_GEMM_SEARCH picks the candidates:
//   heuristic  cuBLASLt's heuristic's first 8 (the default);
//   wide       those, its next 56, and every configuration (tile, stages, swizzle, custom option,
//              cluster shape) that each algorithm id accepts for the problem. Each is run once,
//              the quickest 8 again 5 times, and the median decides.
// ZT_GEMM_LOG=1 logs each choice: the heuristic's first, the best of its first 8 and the one taken.
#pragma once

#include <string>
#include <vector>

#include "blaslt.hpp"

namespace zt::cuda {

// Descriptors of one problem, destroyed on every path out.
struct GemmDescriptors {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulPreference_t preference = nullptr;
  GemmDescriptors() = default;
  GemmDescriptors(const GemmDescriptors&) = delete;
  GemmDescriptors& operator=(const GemmDescriptors&) = delete;
  ~GemmDescriptors();
};

// One configured algorithm (a named type: containers of cuBLASLt's unnamed struct trip nvcc).
struct GemmAlgo {
  cublasLtMatmulAlgo_t algo;
};

enum class GemmSearch { heuristic, wide };

// Parses a ZT_GEMM_SEARCH value; anything else is an error naming the allowed values.
GemmSearch gemm_search_for(const std::string& value);

// The process's choice: ZT_GEMM_SEARCH, read once.
GemmSearch gemm_search();

// The heuristic's ranking first, then (wide) the rest, without repeats. desc.preference must be set.
std::vector<GemmAlgo> gemm_candidates(BlasLtContext& ctx, const GemmDescriptors& desc, cudaDataType_t type,
                                                  cublasLtEpilogue_t epilogue, GemmSearch search, int heuristic_count);

// The candidate that runs p fastest on the compute stream (candidates[0] where none runs).
cublasLtMatmulAlgo_t fastest_algo(BlasLtContext& ctx, const GemmDescriptors& desc, const GemmProblem& p,
                                  const std::vector<GemmAlgo>& candidates);

}  // namespace zt::cuda
