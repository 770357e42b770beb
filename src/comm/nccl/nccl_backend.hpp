// The NCCL backend's entry points, free of CUDA types so that the group code compiles in every
// build. The CUDA build implements them in cuda/nccl_backend.cpp; the CPU-only build in
// nccl_backend_none.cpp, which refuses with a clear error.
#pragma once

#include <memory>
#include <string>

#include "../backend.hpp"

namespace zt::comm {

bool nccl_is_built();

// An NCCL communicator over the ranks of `bootstrap` (rank and size as there), on CUDA device
// `device`. Rank 0's unique id travels as a broadcast over bootstrap. Collective over bootstrap's
// ranks; fails after timeout_s.
std::shared_ptr<Backend> make_nccl_backend(Backend& bootstrap, int rank, int size, int device, double timeout_s,
                                           const std::string& group);

}  // namespace zt::comm
