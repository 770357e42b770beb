// A rank that dies, or is late, in the middle of a collective: the others must fail with the
// timeout error naming the op, its size and the group, never hang. Run through zt launch by
// check_fault.cmake with a short ZT_COMM_TIMEOUT_S.
//   faults_mpi die:  the last rank kills itself (SIGKILL) while the others wait in an all_reduce
//                    (before it contributed, so that the others cannot complete it).
//   faults_mpi late: rank 1 comes to the all_reduce only after the others gave up on it.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "zt/comm/process_group.hpp"
#include "zt/core/error.hpp"

using namespace zt;
using namespace zt::comm;

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode != "die" && mode != "late") {
    std::fprintf(stderr, "usage: %s die|late\n", argv[0]);
    return 2;
  }
  int status = 0;
  try {
    auto world = init_process_group();
    const int n = world->size(), r = world->rank();
    world->barrier().wait();  // everyone is up
    Tensor t = Tensor::zeros({1 << 20}, DType::f32);
    if (mode == "late" && r == 1)
      std::this_thread::sleep_for(std::chrono::duration<double>(world->timeout_s() + 1.0));
    if (mode == "die" && r == n - 1) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the others are in the all_reduce by now
      raise(SIGKILL);
    }
    world->all_reduce(t).wait();
    std::fprintf(stderr, "rank %d: the all_reduce completed, which it must not\n", r);
    status = 3;
  } catch (const Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    status = 1;
  }
  finalize();  // skips MPI_Finalize after the failure
  return status;
}
