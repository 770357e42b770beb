// The parameter fetcher: brings stage-3 parameters whose partition is offloaded (host memory or
// an NVMe file, a ParamStore) to the compute device, whole, for the coordinator.
//
// A fetch of one parameter runs through up to three steps, each asynchronous:
//   read    (NVMe) this rank's piece from the file into a host read buffer;
//   copy    the piece into device memory on the fetch stream: straight into the parameter's
//           tensor at world size 1, else into a device staging buffer;
//   gather  (world > 1) the all-gather of the pieces, ordered after the copy.
// Copies and gathers are issued in the order the fetches were started, and at points that do not
// depend on when a read finishes: at once when there is nothing to read (host memory), else at
// the next module's acquire (advance()), at finish(), or when a full ring of read buffers needs
// one back; a read not done by then is waited for. So every rank issues the gathers at the same
// places among its other collectives (the gradient reductions), as collectives must be. A read
// overlaps the module that runs between its start and the next acquire. offload_param's
// buffer_count and buffer_size bound the buffers: buffer_count host read buffers and
// buffer_count device staging buffers, each of the largest piece this rank holds (at most
// buffer_size elements). A buffer is reused in turn, once what read it is done: the fetch stream
// waits for the gather that read a staging buffer, the host for the copy out of a read buffer.
#pragma once

#include <deque>
#include <map>
#include <vector>

#include "fetch_stream.hpp"
#include "zt/comm/process_group.hpp"
#include "zt/zero/flat_layout.hpp"
#include "zt/zero/param_store.hpp"

namespace zt::zero {

class ParamFetcher {
 public:
  ParamFetcher(const FlatLayout& layout, comm::ProcessGroup& group, const ZeroOptions& options, ParamStore& store);
  ~ParamFetcher();
  ParamFetcher(const ParamFetcher&) = delete;
  ParamFetcher& operator=(const ParamFetcher&) = delete;

  // Starts bringing parameter `slot` to the compute device; returns its tensor (numel, storage
  // dtype), readable on the compute stream once finish(slot) returned.
  Tensor start(int slot);
  void finish(int slot);
  // At each module's acquire: issues the copies and gathers of every fetch started before,
  // waiting for reads not done yet.
  void advance();
  // Before the store is written: no fetch is in flight and no copy still reads host memory.
  void quiesce();
  size_t buffer_bytes() const;

 private:
  struct Fetch {
    Tensor gathered;                // (numel) on the compute device
    int64_t begin = 0, count = 0;   // this rank's piece, in partition elements
    int bounce = -1;                // the read buffer holding the piece, until it is copied
    StoreRead read;
    bool issued = false;            // copied and, at world > 1, its gather started
    FetchEvent copied;              // world 1: the copy into `gathered`
    comm::Work work;                // world > 1: the gather
  };
  struct Buffer {
    Tensor data;                    // (piece_max_)
    int owner = -1;                 // read buffer: the fetch it holds a piece for
    FetchEvent released;            // read buffer: the copy out of it
    comm::Work reader;              // staging buffer: the gather reading it
  };
  void issue_through(int slot);     // issues queued fetches in order up to `slot`, waiting for their reads
  void issue(int slot, Fetch& f);
  size_t take_staging();
  int take_bounce(int slot);

  const FlatLayout& layout_;
  comm::ProcessGroup& group_;
  ParamStore& store_;
  DType dtype_;
  bool pinned_;
  int world_;
  int64_t buffer_count_ = 0;
  int64_t piece_max_ = 0;           // elements: the largest piece of a parameter this rank holds
  FetchStream stream_;
  std::vector<Buffer> staging_, bounce_;
  size_t next_staging_ = 0, next_bounce_ = 0;
  std::map<int, Fetch> fetches_;    // started, not finished
  std::deque<int> queue_;           // started, not yet issued, in start order
};

}  // namespace zt::zero
