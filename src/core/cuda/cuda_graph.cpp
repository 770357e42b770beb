// CudaGraph: stream capture of the calling thread's compute stream (thread-local mode: another
// thread's CUDA calls are not affected), instantiated once and launched on the compute stream.
#include "zt/core/cuda_graph.hpp"

#include <cuda_runtime.h>

#include <utility>
#include <vector>

#include "../memory_backend.hpp"
#include "zt/core/cuda_check.hpp"
#include "zt/core/cuda_stream.hpp"

namespace zt {

namespace {

// The hooks registered by the capture under way on this thread (null when none is).
thread_local std::vector<std::function<void(bool)>>* t_capture_hooks = nullptr;

}  // namespace

struct CudaGraph::Impl {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  std::vector<std::function<void(bool)>> hooks;
  cudaStream_t launched_on = nullptr;  // the stream of the last launch
  ~Impl() {  // a destructor path: never throws
    if (launched_on) cudaStreamSynchronize(launched_on);  // the graph's memory goes with it
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
  }
};

CudaGraph::CudaGraph() : impl_(std::make_unique<Impl>()) {}
CudaGraph::~CudaGraph() = default;

bool CudaGraph::captured() const { return impl_->exec != nullptr; }

void CudaGraph::capture(const std::function<void()>& fn) {
  ZT_CHECK(!captured(), "CudaGraph::capture: this graph was captured already");
  ZT_CHECK(!capturing_graph(), "CudaGraph::capture: a capture is already under way on this thread");
  const cudaStream_t stream = cuda::compute_stream();
  std::vector<std::function<void(bool)>> hooks;
  ZT_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  t_capture_hooks = &hooks;
  detail::track_capture_allocations(true);
  // Ends the capture; on failure drops what was captured (an invalidated capture's error is not
  // sticky, but it would linger as the last error).
  const auto end_capture = [&](bool failed) -> cudaError_t {
    t_capture_hooks = nullptr;
    const detail::CaptureAllocations left = detail::capture_allocations();
    outlived_count_ = left.count, outlived_bytes_ = left.bytes;
    detail::track_capture_allocations(false);
    const cudaError_t status = cudaStreamEndCapture(stream, &impl_->graph);
    if (failed || status != cudaSuccess) {
      if (impl_->graph) cudaGraphDestroy(std::exchange(impl_->graph, nullptr));
      cudaGetLastError();
    }
    return status;
  };
  try {
    fn();
  } catch (const std::exception& e) {
    end_capture(true);
    ZT_THROW("capturing the step into a CUDA graph failed: ", e.what());
  }
  if (const cudaError_t status = end_capture(false); status != cudaSuccess)
    ZT_THROW("capturing the step into a CUDA graph failed at its end: ", cudaGetErrorString(status),
             " (a call the capture does not allow, or a stream forked and not joined)");
  ZT_CUDA_CHECK(cudaGraphGetNodes(impl_->graph, nullptr, &nodes_));
  // The graph's allocations come from memory of its own. The blocks that the default pool keeps
  // from the eager runs before it (it releases nothing: memory_backend_cuda.cpp) go back to the
  // driver first, or the device would hold the captured work's memory twice.
  int device = 0;
  cudaMemPool_t pool;
  ZT_CUDA_CHECK(cudaGetDevice(&device));
  ZT_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device));
  ZT_CUDA_CHECK(cudaStreamSynchronize(stream));
  ZT_CUDA_CHECK(cudaMemPoolTrimTo(pool, 0));
  ZT_CUDA_CHECK(cudaGraphInstantiateWithFlags(&impl_->exec, impl_->graph, 0));
  ZT_CUDA_CHECK(cudaGraphUpload(impl_->exec, stream));
  impl_->hooks = std::move(hooks);
}

void CudaGraph::launch() {
  ZT_CHECK(captured(), "CudaGraph::launch before capture");
  ZT_CHECK(launches_ == 0 || outlived_count_ == 0, "CudaGraph::launch: ", outlived_count_, " allocations (",
           outlived_bytes_, " bytes) made inside the capture outlive it, so the graph runs only once");
  impl_->launched_on = cuda::compute_stream();
  ZT_CUDA_CHECK(cudaGraphLaunch(impl_->exec, impl_->launched_on));
  const bool replay = launches_ > 0;
  ++launches_;
  for (const auto& hook : impl_->hooks) hook(replay);
}

bool capturing_graph() { return t_capture_hooks != nullptr; }

bool on_graph_launch(std::function<void(bool replay)> hook) {
  if (!t_capture_hooks) return false;
  t_capture_hooks->push_back(std::move(hook));
  return true;
}

}  // namespace zt
