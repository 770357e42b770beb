// The reductions that all_reduce, reduce and reduce_scatter apply elementwise across ranks.
#pragma once

#include <cstdint>
#include <string>

namespace zt::comm {

// avg is the sum divided by the group size (integer division for integer dtypes, as NCCL's ncclAvg).
enum class ReduceOp : uint8_t { sum, avg, max, min };

const char* reduce_op_name(ReduceOp op);                 // "sum", "avg", "max", "min"
ReduceOp reduce_op_from_name(const std::string& name);  // the inverse; a zt::Error for anything else

}  // namespace zt::comm
