#include "zt/core/device.hpp"

#include "zt/core/error.hpp"

namespace zt {

std::string Device::name() const { return is_cpu() ? "cpu" : str("cuda:", index); }

Device device_from_name(const std::string& name) {
  if (name == "cpu") return Device::cpu();
  if (name == "cuda") return Device::cuda(0);
  if (name.rfind("cuda:", 0) == 0) {
    const std::string ordinal = name.substr(5);
    char* end = nullptr;
    const long index = std::strtol(ordinal.c_str(), &end, 10);
    if (!ordinal.empty() && end && *end == '\0' && index >= 0) return Device::cuda(int(index));
  }
  ZT_THROW("unknown device '", name, "' (expected cpu, cuda or cuda:N)");
}

Device device_for_local_rank(const std::string& name, int local_rank) {
  ZT_CHECK(local_rank >= 0, "local rank ", local_rank, " must be >= 0 (LOCAL_RANK / OMPI_COMM_WORLD_LOCAL_RANK)");
  if (name == "cuda") return Device::cuda(local_rank);
  return device_from_name(name);
}

}  // namespace zt
