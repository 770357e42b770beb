// CudaGraph in a build without CUDA: there is nothing to capture.
#include "zt/core/cuda_graph.hpp"

#include "zt/core/error.hpp"

namespace zt {

struct CudaGraph::Impl {};

CudaGraph::CudaGraph() = default;
CudaGraph::~CudaGraph() = default;

bool CudaGraph::captured() const { return false; }
void CudaGraph::capture(const std::function<void()>&) { ZT_THROW("CudaGraph::capture: this build of zt has no CUDA"); }
void CudaGraph::launch() { ZT_THROW("CudaGraph::launch: this build of zt has no CUDA"); }

bool capturing_graph() { return false; }
bool on_graph_launch(std::function<void(bool)>) { return false; }

}  // namespace zt
