#include "zt/comm/reduce_op.hpp"

#include "zt/core/error.hpp"

namespace zt::comm {

const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return "sum";
    case ReduceOp::avg: return "avg";
    case ReduceOp::max: return "max";
    case ReduceOp::min: return "min";
  }
  return "?";
}

ReduceOp reduce_op_from_name(const std::string& name) {
  for (ReduceOp op : {ReduceOp::sum, ReduceOp::avg, ReduceOp::max, ReduceOp::min})
    if (name == reduce_op_name(op)) return op;
  ZT_THROW("unknown reduce op '", name, "' (expected sum, avg, max or min)");
}

}  // namespace zt::comm
