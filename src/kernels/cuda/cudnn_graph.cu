// The execution plan search and the per-device handles of cudnn_graph.hpp.
#include "cudnn_graph.hpp"

#include "zt/core/log.hpp"

namespace zt::cuda::cudnn {

std::string first_execution_plan(const Descriptor& graph, cudnnHandle_t handle, Descriptor& plan,
                                 int64_t& workspace_bytes, const char* what) {
  std::string why;
  for (const cudnnBackendHeurMode_t mode : {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK}) {
    std::vector<Descriptor> configs;
    try {
      Descriptor heur(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
      heur.set_desc(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph)
          .set(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, &mode)
          .finalize("engine heuristics");
      int64_t count = 0;
      check(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0,
                                     &count, nullptr),
            "engine heuristics' result count");
      std::vector<cudnnBackendDescriptor_t> raw;
      for (int64_t i = 0; i < count; ++i) {
        configs.emplace_back(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
        raw.push_back(configs.back().get());
      }
      int64_t got = 0;
      if (count > 0)
        check(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                       count, &got, raw.data()),
              "engine heuristics' results");
      configs.resize(size_t(got));
      if (got == 0) why += str(mode == CUDNN_HEUR_MODE_A ? "heuristics A" : "fallback list", ": no engine; ");
    } catch (const CudnnFailure& e) {
      why += str(e.what(), "; ");
      continue;
    }
    for (Descriptor& config : configs) {
      try {
        Descriptor p(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
        p.set(CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, &handle)
            .set_desc(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, config)
            .finalize("execution plan");
        int64_t workspace = 0, n = 0;
        check(cudnnBackendGetAttribute(p.get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &n,
                                       &workspace),
              "execution plan's workspace size");
        Descriptor engine(CUDNN_BACKEND_ENGINE_DESCRIPTOR);
        int64_t engine_index = -1;
        cudnnBackendDescriptor_t raw_engine = engine.get();
        if (cudnnBackendGetAttribute(config.get(), CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n,
                                     &raw_engine) == CUDNN_STATUS_SUCCESS)
          cudnnBackendGetAttribute(engine.get(), CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &n,
                                   &engine_index);
        plan = std::move(p);
        workspace_bytes = workspace;
        log_debug("cuDNN ", what, ": engine ", engine_index, ", workspace ", workspace, " bytes");
        return "";
      } catch (const CudnnFailure& e) {
        why += str(e.what(), "; ");
      }
    }
  }
  return why.empty() ? "no engine configuration" : why;
}

std::mutex& graph_mutex() {
  static std::mutex* m = new std::mutex;  // lives as long as the process, like the handles
  return *m;
}

cudnnHandle_t handle_for_device(int device) {
  static auto* handles = new std::map<int, cudnnHandle_t>;
  auto it = handles->find(device);
  if (it != handles->end()) return it->second;
  cudnnHandle_t h = nullptr;
  check(cudnnCreate(&h), "cudnnCreate");
  handles->emplace(device, h);
  return h;
}

}  // namespace zt::cuda::cudnn
