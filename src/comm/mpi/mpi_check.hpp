// ZT_MPI_CHECK: an MPI call's status becomes a zt::Error naming the call, MPI's reason and what
// was being done. MPI's handlers are set to MPI_ERRORS_RETURN on every communicator we use, so
// errors come back as codes instead of aborting the process.
#pragma once

#include <mpi.h>

#include <string>

#include "zt/core/error.hpp"

namespace zt::comm {

inline std::string mpi_error_string(int code) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, buf, &len) != MPI_SUCCESS) return str("MPI error ", code);
  return std::string(buf, size_t(len));
}

}  // namespace zt::comm

#define ZT_MPI_CHECK(call, what)                                                                  \
  do {                                                                                            \
    const int zt_mpi_status_ = (call);                                                            \
    if (zt_mpi_status_ != MPI_SUCCESS)                                                            \
      ::zt::detail::throw_error(__FILE__, __LINE__,                                               \
                                ::zt::str("MPI call ", #call, " failed: ",                        \
                                          ::zt::comm::mpi_error_string(zt_mpi_status_), " (",     \
                                          what, ")"));                                            \
  } while (0)
