// A CUDA graph of work the calling thread queues: capture() runs a function with the thread's
// compute stream capturing, so that the kernels, copies and stream-ordered allocations it queues
// (on the compute stream and on the streams it forks from it) become one graph; launch() queues
// the whole graph again on the compute stream, with one launch instead of one per kernel, and no
// gap between kernels waiting on the host or on another stream's event.
//
//   CudaGraph graph;
//   graph.capture([&] { forward_and_backward(); });  // the host side runs once; nothing executes
//   graph.launch();                                   // the captured work, for the first time
//   ...  graph.launch();                              // again, on whatever the buffers hold now
//
// What a captured function may do: queue work on the compute stream, fork and join other streams
// with events, allocate and free device memory (Storage). What it may not: wait for the GPU, copy
// between host and device memory (except a device-to-host copy into pinned memory made before),
// allocate pinned host memory, or read a value the work computes. A host value baked into a kernel's arguments is replayed as it was at
// the capture; values that change from launch to launch must be read from device memory.
//
// The host side of a replay: code that keeps host state about queued work (a readback's mark, a
// list of pending losses) registers a hook while it is captured (on_graph_launch); each launch
// runs the hooks after queuing the graph, replay = false for the first launch after capture
// (whose host side the capture itself ran) and true after that.
//
// Memory made inside the capture belongs to the graph. What the captured function allocates must
// be freed inside it too, or the graph can be launched only once: capture() counts the
// allocations left (outlived_allocations()), and launch() refuses a second launch then.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

namespace zt {

class CudaGraph {
 public:
  CudaGraph();
  ~CudaGraph();
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  // Captures what fn queues and instantiates the graph. On an error inside fn (or a call that a
  // capture does not allow) the capture is ended and the error rethrown, naming the capture; the
  // host state fn changed is then whatever fn left.
  void capture(const std::function<void()>& fn);
  bool captured() const;
  // Queues the graph on the calling thread's compute stream, then runs the capture's hooks.
  void launch();
  int64_t launches() const { return launches_; }
  size_t nodes() const { return nodes_; }
  // Allocations made inside the capture and not freed inside it: count and bytes.
  size_t outlived_allocations() const { return outlived_count_; }
  size_t outlived_bytes() const { return outlived_bytes_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int64_t launches_ = 0;
  size_t nodes_ = 0, outlived_count_ = 0, outlived_bytes_ = 0;
};

// True while the calling thread is inside CudaGraph::capture.
bool capturing_graph();
// Inside a capture: hook runs after each launch of the graph being captured (see above) and true
// is returned. Outside one nothing is kept and false is returned.
bool on_graph_launch(std::function<void(bool replay)> hook);

}  // namespace zt
