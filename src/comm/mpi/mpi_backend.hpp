// The MPI backend: host tensors over one MPI communicator, every op a non-blocking MPI_I* call
// carried by the process's MpiRuntime.
#pragma once

#include <memory>

#include "../backend.hpp"

namespace zt::comm {

// The backend over MPI_COMM_WORLD (starting MPI if needed); world size and rank from MPI.
std::shared_ptr<Backend> make_mpi_world_backend();

}  // namespace zt::comm
