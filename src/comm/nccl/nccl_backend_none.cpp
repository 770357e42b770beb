// The CPU-only build's NCCL: there is none.
#include "nccl_backend.hpp"

#include "zt/core/error.hpp"

namespace zt::comm {

bool nccl_is_built() { return false; }

std::shared_ptr<Backend> make_nccl_backend(Backend&, int, int, int, double, const std::string& group) {
  ZT_THROW("CUDA tensors on ", group, ": this build has no CUDA/NCCL (configure with -DZT_CUDA=ON on a machine with the "
           "CUDA toolkit)");
}

}  // namespace zt::comm
