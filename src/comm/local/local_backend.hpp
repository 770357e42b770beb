// The backend of a world of one process: no MPI, no NCCL. Every collective over one rank is the
// identity or a copy, done at once (host or CUDA tensors alike); send/recv to oneself go
// through a mailbox.
#pragma once

#include <memory>

#include "../backend.hpp"

namespace zt::comm {

std::shared_ptr<Backend> make_local_backend();

}  // namespace zt::comm
