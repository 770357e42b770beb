// Where a tensor's bytes live.
#pragma once

#include <cstdint>
#include <string>

namespace zt {

enum class DeviceKind : uint8_t { cpu, cuda };

struct Device {
  DeviceKind kind = DeviceKind::cpu;
  int index = 0;  // the CUDA ordinal; 0 for the CPU

  static Device cpu() { return {DeviceKind::cpu, 0}; }
  static Device cuda(int index = 0) { return {DeviceKind::cuda, index}; }
  bool is_cpu() const { return kind == DeviceKind::cpu; }
  bool is_cuda() const { return kind == DeviceKind::cuda; }
  bool operator==(const Device& o) const { return kind == o.kind && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string name() const;  // "cpu", "cuda:0"
};

// Parses "cpu", "cuda" and "cuda:N".
Device device_from_name(const std::string& name);
// The device of one rank of a launch: "cuda" without an ordinal is the rank's own GPU,
// cuda:local_rank (the ranks of a host take its visible GPUs in order, as torch's LOCAL_RANK
// convention has it), so that the same command line runs on every rank; "cpu" and "cuda:N" stand
// as given.
Device device_for_local_rank(const std::string& name, int local_rank);

// Whether this build has CUDA and a device is visible at run time.
bool cuda_is_built();
bool cuda_is_available();
int cuda_device_count();  // visible CUDA devices; 0 without CUDA or without a device

}  // namespace zt
