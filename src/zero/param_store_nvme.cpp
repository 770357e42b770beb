#include "param_store_parts.hpp"

namespace zt::zero {

std::shared_ptr<ParamStore> make_nvme_param_store(const ZeroOptions&, int64_t, int) {
  ZT_THROW("zero_optimization.offload_param.device = \"nvme\" is not supported by this version of zt; use \"cpu\"");
}

}  // namespace zt::zero
