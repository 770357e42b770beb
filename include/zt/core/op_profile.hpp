// Per-op timing for finding where a step goes: with ZT_PROFILE_OPS=1 every op of the op table
// (zt/kernels/ops.hpp) counts its calls and time under its name; ops on a GPU are timed by events
// on the compute stream (from when the stream reaches the op to when it finishes it, so waiting
// for the host counts against the op that waited), ops on the CPU by the host clock. Nested ops
// count once, in the outermost. For device ops the table also sums, under each op, the time on
// its stream from the end of the op before it to its own start: the GPU waiting for the host
// (launch overhead, host work between ops, synchronizations), or work outside the op table.
// Off (the default), a scope costs one branch.
#pragma once

#include <string>

namespace zt {

class OpScope {
 public:
  OpScope(const char* name, bool on_device);
  ~OpScope();
  OpScope(const OpScope&) = delete;
  OpScope& operator=(const OpScope&) = delete;

 private:
  bool active_ = false;  // profiling was on when the scope opened
  int slot_ = -1;        // -1: nested, not recorded
};

// Whether ops are being profiled: ZT_PROFILE_OPS at start, or as set (change it only between ops).
bool op_profiling();
void set_op_profiling(bool on);
// The totals so far, one line per op by descending time; waits for the GPU. Empty when off.
std::string op_profile_table();
void op_profile_reset();

}  // namespace zt

#define ZT_OP_SCOPE_CAT2(a, b) a##b
#define ZT_OP_SCOPE_CAT(a, b) ZT_OP_SCOPE_CAT2(a, b)
// Times the rest of the enclosing scope as op `name`; tensor t says where it runs.
#define ZT_OP_SCOPE(name, t) ::zt::OpScope ZT_OP_SCOPE_CAT(zt_op_scope_, __LINE__)((name), (t).device().is_cuda())
// As ZT_OP_SCOPE, with where it runs given directly.
#define ZT_OP_SCOPE_ON(name, on_device) ::zt::OpScope ZT_OP_SCOPE_CAT(zt_op_scope_, __LINE__)((name), (on_device))
