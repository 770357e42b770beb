// Our dtypes and reductions in MPI's terms, and the f32 staging that bf16/f16 reductions take
// on the host (MPI has no 16-bit float types; summing in f32 and rounding once is also more
// accurate than a user-defined op that rounds at every step of the reduction tree).
#pragma once

#include <mpi.h>

#include <cstddef>
#include <memory>

#include "zt/comm/reduce_op.hpp"
#include "zt/core/dtype.hpp"

namespace zt::comm {

// The MPI type that moves elements of dtype (bf16/f16 move as MPI_UINT16_T).
MPI_Datatype mpi_datatype(DType dtype);
// sum and avg are MPI_SUM (avg divides afterwards).
MPI_Op mpi_reduce_op(ReduceOp op);
// bf16 and f16 reduce through f32 buffers.
bool needs_f32_staging(DType dtype);

std::unique_ptr<float[]> to_f32(const void* src, DType dtype, size_t n);  // a new f32 copy of n elements
void from_f32(const float* src, DType dtype, void* dst, size_t n);
// data[i] /= divisor, in dtype's arithmetic (integer division for integers).
void divide_in_place(void* data, DType dtype, size_t n, int divisor);

// Elementwise operations (all_reduce, broadcast, reduce, send/recv) go out in chunks of at
// most this many elements: MPI counts are ints, and Open MPI's non-blocking collectives run
// large messages about twice as fast in pieces of a few MiB, all posted at once (measured with
// zt bench comm). 2^20 unless ZT_COMM_MPI_MAX_CHUNK says otherwise (the tests make it small).
size_t mpi_max_chunk();

}  // namespace zt::comm
