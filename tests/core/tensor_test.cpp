#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "zt/core/env.hpp"
#include "zt/core/tensor.hpp"

namespace zt {

TEST(Tensor, ViewsShareStorage) {
  Tensor flat = Tensor::zeros({10}, DType::f32);
  Tensor a = flat.view(2, {2, 2});
  a.fill_(3.0);
  const float* p = flat.data<float>();
  EXPECT_EQ(p[1], 0.0f);
  EXPECT_EQ(p[2], 3.0f);
  EXPECT_EQ(p[5], 3.0f);
  EXPECT_EQ(p[6], 0.0f);
  EXPECT_EQ(a.storage().get(), flat.storage().get());
}

TEST(Tensor, ViewPastStorageIsAnError) {
  Tensor flat = Tensor::zeros({4}, DType::f32);
  EXPECT_THROW(flat.view(2, {3}), Error);
}

TEST(Tensor, ReshapeInfersOneDimension) {
  Tensor t = Tensor::zeros({2, 3, 4}, DType::f32);
  EXPECT_EQ(t.reshape({-1, 4}).shape(), (Shape{6, 4}));
  EXPECT_THROW(t.reshape({5, -1}), Error);
}

TEST(Tensor, SliceTakesRows) {
  Tensor t = Tensor::from_floats({3, 2}, {0, 1, 2, 3, 4, 5});
  Tensor s = t.slice(1, 3);
  EXPECT_EQ(s.shape(), (Shape{2, 2}));
  EXPECT_EQ(s.data<float>()[0], 2.0f);
}

TEST(Tensor, ReadingTheWrongTypeIsAnError) {
  Tensor t = Tensor::zeros({2}, DType::f32);
  EXPECT_THROW(t.data<double>(), Error);
}

TEST(DType, Bf16RoundsToNearestEven) {
  EXPECT_EQ(float_to_bf16(1.0f), 0x3f80);
  // 1 + 2^-8 is halfway between two bf16 values; ties go to the even mantissa (1.0).
  EXPECT_EQ(float_to_bf16(1.00390625f), 0x3f80);
  EXPECT_EQ(float_to_bf16(1.01171875f), 0x3f82);  // 1 + 3*2^-8: tie, rounds up to even
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
}

TEST(DType, F16RoundTripsEveryHalf) {
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    const float f = f16_to_float(uint16_t(bits));
    if (std::isnan(f)) continue;
    EXPECT_EQ(float_to_f16(f), bits) << "bits " << bits;
  }
  EXPECT_EQ(float_to_f16(65520.0f), 0x7c00);  // rounds past the largest half to infinity
  EXPECT_EQ(float_to_f16(1e-8f), 0x0000);
}

TEST(DType, ConversionsBetweenTensors) {
  Tensor t = Tensor::from_floats({3}, {1.5f, -2.25f, 1e-3f});
  Tensor h = t.to(DType::f16).to(DType::f32);
  EXPECT_NEAR(h.data<float>()[2], 1e-3f, 1e-6f);
  EXPECT_EQ(t.to(DType::bf16).to(DType::f32).data<float>()[1], -2.25f);
}

TEST(Env, BadValueNamesTheVariable) {
  setenv("ZT_TEST_INT", "12x", 1);
  try {
    env_int("ZT_TEST_INT", 0);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ZT_TEST_INT"), std::string::npos);
  }
}

TEST(Device, CudaTensorWithoutDeviceIsAnError) {
  if (cuda_is_available()) GTEST_SKIP() << "a CUDA device is present";
  EXPECT_THROW(Tensor::empty({4}, DType::f32, Device::cuda(0)), Error);
}

}  // namespace zt
