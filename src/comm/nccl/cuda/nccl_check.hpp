// ZT_NCCL_CHECK: an NCCL call's status becomes a zt::Error naming the call, NCCL's reason and
// what was being done. ncclInProgress (non-blocking communicators) counts as success: the
// caller then waits for the communicator to be ready.
#pragma once

#include <nccl.h>

#include "zt/core/error.hpp"

#define ZT_NCCL_CHECK(call, what)                                                                     \
  do {                                                                                                \
    const ncclResult_t zt_nccl_status_ = (call);                                                      \
    if (zt_nccl_status_ != ncclSuccess && zt_nccl_status_ != ncclInProgress)                          \
      ::zt::detail::throw_error(__FILE__, __LINE__,                                                   \
                                ::zt::str("NCCL call ", #call, " failed: ",                           \
                                          ncclGetErrorString(zt_nccl_status_), " (", what, ")"));     \
  } while (0)
