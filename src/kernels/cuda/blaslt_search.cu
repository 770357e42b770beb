#include "blaslt_search.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>

#include "common.cuh"
#include "zt/core/env.hpp"
#include "zt/core/log.hpp"

namespace zt::cuda {

namespace {

constexpr int kHeuristicWide = 64;     // heuristic results a wide search asks for
constexpr int kMaxCandidates = 512;    // candidates timed at most
constexpr int kMaxChecks = 20000;      // configurations checked at most per problem
constexpr int kRetimed = 8;            // the quickest after one run each, timed again
constexpr int kRetimeRuns = 5;

bool same_algo(const cublasLtMatmulAlgo_t& x, const cublasLtMatmulAlgo_t& y) {
  return std::memcmp(x.data, y.data, sizeof x.data) == 0;
}

void add_unique(std::vector<GemmAlgo>& list, const cublasLtMatmulAlgo_t& algo) {
  if (int(list.size()) >= kMaxCandidates) return;
  for (const auto& have : list)
    if (same_algo(have.algo, algo)) return;
  list.push_back(GemmAlgo{algo});
}

template <class T>
std::vector<T> capability_list(const cublasLtMatmulAlgo_t& algo, cublasLtMatmulAlgoCapAttributes_t attr) {
  size_t bytes = 0;
  if (cublasLtMatmulAlgoCapGetAttribute(&algo, attr, nullptr, 0, &bytes) != CUBLAS_STATUS_SUCCESS || bytes == 0)
    return {};
  std::vector<T> values(bytes / sizeof(T));
  if (cublasLtMatmulAlgoCapGetAttribute(&algo, attr, values.data(), values.size() * sizeof(T), &bytes) !=
      CUBLAS_STATUS_SUCCESS)
    return {};
  return values;
}

template <class T>
T capability(const cublasLtMatmulAlgo_t& algo, cublasLtMatmulAlgoCapAttributes_t attr, T fallback) {
  T value = fallback;
  size_t written = 0;
  if (cublasLtMatmulAlgoCapGetAttribute(&algo, attr, &value, sizeof value, &written) != CUBLAS_STATUS_SUCCESS)
    return fallback;
  return value;
}

template <class T>
T config(const cublasLtMatmulAlgo_t& algo, cublasLtMatmulAlgoConfigAttributes_t attr) {
  T value{};
  size_t written = 0;
  cublasLtMatmulAlgoConfigGetAttribute(&algo, attr, &value, sizeof value, &written);
  return value;
}

template <class T>
bool set_config(cublasLtMatmulAlgo_t& algo, cublasLtMatmulAlgoConfigAttributes_t attr, T value) {
  return cublasLtMatmulAlgoConfigSetAttribute(&algo, attr, &value, sizeof value) == CUBLAS_STATUS_SUCCESS;
}

std::string describe(const cublasLtMatmulAlgo_t& algo) {
  return str("algo ", config<int32_t>(algo, CUBLASLT_ALGO_CONFIG_ID), " tile ",
             config<uint32_t>(algo, CUBLASLT_ALGO_CONFIG_TILE_ID), " stages ",
             config<uint32_t>(algo, CUBLASLT_ALGO_CONFIG_STAGES_ID), " swizzle ",
             config<uint32_t>(algo, CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING), " custom ",
             config<uint32_t>(algo, CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION), " cluster ",
             config<uint16_t>(algo, CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID), " splitk ",
             config<int32_t>(algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM));
}

// Every configuration of each algorithm id that cuBLASLt accepts for the problem, split-K aside.
void add_enumerated(BlasLtContext& ctx, const GemmDescriptors& desc, cudaDataType_t type, cublasLtEpilogue_t epilogue,
                    std::vector<GemmAlgo>& list) {
  int ids[128];
  int id_count = 0;
  if (cublasLtMatmulAlgoGetIds(ctx.handle, CUBLAS_COMPUTE_32F, CUDA_R_32F, type, type, type, type, 128, ids,
                               &id_count) != CUBLAS_STATUS_SUCCESS)
    return;
  const uint16_t clusters[] = {CUBLASLT_CLUSTER_SHAPE_AUTO, CUBLASLT_CLUSTER_SHAPE_1x1x1, CUBLASLT_CLUSTER_SHAPE_2x1x1,
                               CUBLASLT_CLUSTER_SHAPE_1x2x1, CUBLASLT_CLUSTER_SHAPE_2x2x1};
  int checks = 0;
  for (int i = 0; i < id_count; ++i) {
    cublasLtMatmulAlgo_t base;
    if (cublasLtMatmulAlgoInit(ctx.handle, CUBLAS_COMPUTE_32F, CUDA_R_32F, type, type, type, type, ids[i], &base) !=
        CUBLAS_STATUS_SUCCESS)
      continue;
    const auto epilogues = capability<uint32_t>(base, CUBLASLT_ALGO_CAP_EPILOGUE_MASK, 0);
    if ((epilogues & uint32_t(epilogue)) != uint32_t(epilogue)) continue;
    auto tiles = capability_list<uint32_t>(base, CUBLASLT_ALGO_CAP_TILE_IDS);
    auto stages = capability_list<uint32_t>(base, CUBLASLT_ALGO_CAP_STAGES_IDS);
    if (tiles.empty()) tiles = {CUBLASLT_MATMUL_TILE_UNDEFINED};
    if (stages.empty()) stages = {CUBLASLT_MATMUL_STAGES_UNDEFINED};
    const int swizzles = capability<int32_t>(base, CUBLASLT_ALGO_CAP_CTA_SWIZZLING_SUPPORT, 0) ? 2 : 1;
    const int customs = capability<int32_t>(base, CUBLASLT_ALGO_CAP_CUSTOM_OPTION_MAX, 0) + 1;
    for (uint32_t tile : tiles)
      for (uint32_t stage : stages)
        for (int swizzle = 0; swizzle < swizzles; ++swizzle)
          for (int custom = 0; custom < customs; ++custom)
            for (uint16_t cluster : clusters) {
              if (++checks > kMaxChecks || int(list.size()) >= kMaxCandidates) return;
              cublasLtMatmulAlgo_t algo = base;
              if (!set_config(algo, CUBLASLT_ALGO_CONFIG_TILE_ID, tile) ||
                  !set_config(algo, CUBLASLT_ALGO_CONFIG_STAGES_ID, stage) ||
                  !set_config(algo, CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING, uint32_t(swizzle)) ||
                  !set_config(algo, CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION, uint32_t(custom)) ||
                  !set_config(algo, CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID, cluster))
                continue;
              cublasLtMatmulHeuristicResult_t result = {};
              if (cublasLtMatmulAlgoCheck(ctx.handle, desc.op, desc.a, desc.b, desc.d, desc.d, &algo, &result) !=
                      CUBLAS_STATUS_SUCCESS ||
                  result.workspaceSize > ctx.workspace_bytes)
                continue;
              add_unique(list, algo);
            }
  }
}

// Times candidates on the compute stream: the median of `runs` runs after one untimed run, or
// infinity where the candidate does not run.
class CandidateTimer {
 public:
  CandidateTimer(BlasLtContext& ctx, const GemmDescriptors& desc, const GemmProblem& p)
      : ctx_(ctx), desc_(desc), p_(p),
        // A product that accumulates (beta != 0) must not run into its real output: a scratch copy
        // takes the trial runs. Otherwise the real output (and GELU's aux) are overwritten by the
        // run that follows the choice anyway.
        scratch_(p.beta != 0.0f ? size_t(p.ldd) * size_t(p.n) * sizeof(float) : 0),
        d_(p.beta != 0.0f ? scratch_.as<void>() : p.d) {
    ZT_CUDA_CHECK(cudaEventCreate(&start_));
    ZT_CUDA_CHECK(cudaEventCreate(&stop_));
  }
  ~CandidateTimer() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  CandidateTimer(const CandidateTimer&) = delete;
  CandidateTimer& operator=(const CandidateTimer&) = delete;

  float median_ms(const cublasLtMatmulAlgo_t& algo, int runs) {
    std::vector<float> ms(size_t(runs), 0.0f);
    const float alpha = 1.0f, beta = p_.beta;
    for (int r = -1; r < runs; ++r) {
      ZT_CUDA_CHECK(cudaEventRecord(start_, compute_stream()));
      const bool ok = cublasLtMatmul(ctx_.handle, desc_.op, &alpha, p_.a, desc_.a, p_.b, desc_.b, &beta, d_, desc_.d,
                                     d_, desc_.d, &algo, ctx_.workspace(compute_stream()), ctx_.workspace_bytes,
                                     compute_stream()) == CUBLAS_STATUS_SUCCESS;
      ZT_CUDA_CHECK(cudaEventRecord(stop_, compute_stream()));
      ZT_CUDA_CHECK(cudaEventSynchronize(stop_));
      if (!ok || cudaGetLastError() != cudaSuccess) return std::numeric_limits<float>::infinity();
      if (r >= 0) ZT_CUDA_CHECK(cudaEventElapsedTime(&ms[size_t(r)], start_, stop_));
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
  }

 private:
  BlasLtContext& ctx_;
  const GemmDescriptors& desc_;
  const GemmProblem& p_;
  Scratch scratch_;
  void* d_;
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

}  // namespace

GemmDescriptors::~GemmDescriptors() {
  if (preference) cublasLtMatmulPreferenceDestroy(preference);
  if (d) cublasLtMatrixLayoutDestroy(d);
  if (b) cublasLtMatrixLayoutDestroy(b);
  if (a) cublasLtMatrixLayoutDestroy(a);
  if (op) cublasLtMatmulDescDestroy(op);
}

GemmSearch gemm_search_for(const std::string& value) {
  if (value == "heuristic") return GemmSearch::heuristic;
  if (value == "wide") return GemmSearch::wide;
  ZT_THROW("ZT_GEMM_SEARCH='", value, "' is not a GEMM search (use heuristic or wide)");
}

GemmSearch gemm_search() {
  static const GemmSearch search = gemm_search_for(env_string("ZT_GEMM_SEARCH", "heuristic"));
  return search;
}

std::vector<GemmAlgo> gemm_candidates(BlasLtContext& ctx, const GemmDescriptors& desc, cudaDataType_t type,
                                                  cublasLtEpilogue_t epilogue, GemmSearch search, int heuristic_count) {
  const int wanted = search == GemmSearch::wide ? std::max(heuristic_count, kHeuristicWide) : heuristic_count;
  const std::unique_ptr<cublasLtMatmulHeuristicResult_t[]> results(new cublasLtMatmulHeuristicResult_t[wanted]());
  int returned = 0;
  ZT_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(ctx.handle, desc.op, desc.a, desc.b, desc.d, desc.d, desc.preference,
                                                 wanted, results.get(), &returned));
  std::vector<GemmAlgo> list;
  for (int i = 0; i < returned; ++i)
    if (results[i].state == CUBLAS_STATUS_SUCCESS && results[i].workspaceSize <= ctx.workspace_bytes)
      add_unique(list, results[i].algo);
  if (search == GemmSearch::wide) add_enumerated(ctx, desc, type, epilogue, list);
  return list;
}

cublasLtMatmulAlgo_t fastest_algo(BlasLtContext& ctx, const GemmDescriptors& desc, const GemmProblem& p,
                                  const std::vector<GemmAlgo>& candidates) {
  ZT_CHECK(!candidates.empty(), "fastest_algo: no candidates for a ", p.m, "x", p.n, "x", p.k, " GEMM");
  if (candidates.size() == 1) return candidates[0].algo;
  CandidateTimer timer(ctx, desc, p);
  // One run each, then the quickest few (with the heuristic's first and the best of its first 8,
  // for the log) again.
  std::vector<std::pair<float, size_t>> first;
  for (size_t i = 0; i < candidates.size(); ++i) first.emplace_back(timer.median_ms(candidates[i].algo, 1), i);
  std::vector<std::pair<float, size_t>> by_time = first;
  std::sort(by_time.begin(), by_time.end());
  const size_t best_of_8 =
      std::min_element(first.begin(), first.begin() + std::min<size_t>(8, first.size()))->second;
  std::vector<size_t> again = {0, best_of_8};
  for (size_t i = 0; i < by_time.size() && i < size_t(kRetimed); ++i) again.push_back(by_time[i].second);
  std::sort(again.begin(), again.end());
  again.erase(std::unique(again.begin(), again.end()), again.end());
  std::vector<float> ms(candidates.size(), std::numeric_limits<float>::infinity());
  size_t best = 0;
  for (size_t i : again) {
    ms[i] = timer.median_ms(candidates[i].algo, kRetimeRuns);
    if (ms[i] < ms[best]) best = i;
  }
  static const bool log = env_bool("ZT_GEMM_LOG", false);
  if (log)
    log_info("gemm ", p.m, "x", p.n, "x", p.k, (p.trans_a ? " T" : " N"), (p.trans_b ? "T" : "N"),
             p.gelu ? " gelu" : p.dgelu ? " dgelu" : p.bias ? " bias" : "", p.beta != 0.0f ? " accumulate" : "",
             ": heuristic first ", ms[0], " ms, best of its first 8 ", ms[best_of_8], " ms, chosen ", ms[best],
             " ms of ", candidates.size(), " candidates (", describe(candidates[best].algo), ")");
  return candidates[best].algo;
}

}  // namespace zt::cuda
