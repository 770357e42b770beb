// Device names, and the device each rank of a launch takes for "--device cuda".
#include <gtest/gtest.h>

#include "zt/core/device.hpp"
#include "zt/core/error.hpp"

namespace zt {
namespace {

TEST(Device, NamesParse) {
  EXPECT_EQ(device_from_name("cpu"), Device::cpu());
  EXPECT_EQ(device_from_name("cuda"), Device::cuda(0));
  EXPECT_EQ(device_from_name("cuda:3"), Device::cuda(3));
  EXPECT_EQ(Device::cuda(5).name(), "cuda:5");
  for (const char* bad : {"gpu", "cuda:", "cuda:-1", "cuda:1x", "CUDA"}) EXPECT_THROW(device_from_name(bad), Error) << bad;
}

TEST(Device, CudaWithoutOrdinalIsTheLocalRanksGpu) {
  for (int local_rank = 0; local_rank < 8; ++local_rank)
    EXPECT_EQ(device_for_local_rank("cuda", local_rank), Device::cuda(local_rank)) << local_rank;
  // An explicit ordinal or the CPU stands, whatever the rank.
  EXPECT_EQ(device_for_local_rank("cuda:1", 3), Device::cuda(1));
  EXPECT_EQ(device_for_local_rank("cpu", 3), Device::cpu());
}

TEST(Device, BadLocalRankOrNameIsAnError) {
  EXPECT_THROW(device_for_local_rank("cuda", -1), Error);
  try {
    device_for_local_rank("gpu", 1);
    FAIL() << "expected a zt::Error";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("'gpu'"), std::string::npos) << e.message();
  }
}

}  // namespace
}  // namespace zt
