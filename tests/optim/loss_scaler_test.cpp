// The dynamic loss scale through overflow and clean sequences, traced by hand through DeepSpeed's
// DynamicLossScaler.update_scale.
#include <gtest/gtest.h>

#include "zt/core/error.hpp"
#include "zt/engine/config.hpp"
#include "zt/optim/loss_scaler.hpp"

namespace zt::optim {
namespace {

LossScalerConfig small(double initial, int64_t window, int64_t hysteresis, double min_scale) {
  LossScalerConfig c;
  c.initial_scale = initial;
  c.scale_window = window;
  c.hysteresis = hysteresis;
  c.min_scale = min_scale;
  return c;
}

TEST(LossScaler, DefaultsFromTheFp16Section) {
  engine::Fp16Config fp16;
  fp16.enabled = true;
  const LossScaler s = LossScaler::from_fp16(fp16);
  EXPECT_TRUE(s.dynamic());
  EXPECT_DOUBLE_EQ(s.scale(), 65536.0);  // 2^16
  EXPECT_EQ(s.hysteresis_left(), 2);
  EXPECT_EQ(s.config().scale_window, 1000);
  fp16.loss_scale = 128;
  EXPECT_FALSE(LossScaler::from_fp16(fp16).dynamic());
  EXPECT_DOUBLE_EQ(LossScaler::from_fp16(fp16).scale(), 128.0);
}

TEST(LossScaler, GrowsAfterAWindowOfCleanSteps) {
  LossScaler s(small(16, 3, 2, 1));
  EXPECT_TRUE(s.update(false));  // iteration 0: (0 + 1) % 3 != 0
  EXPECT_TRUE(s.update(false));
  EXPECT_DOUBLE_EQ(s.scale(), 16);
  EXPECT_TRUE(s.update(false));  // iteration 2: 3 % 3 == 0
  EXPECT_DOUBLE_EQ(s.scale(), 32);
  for (int i = 0; i < 3; ++i) s.update(false);
  EXPECT_DOUBLE_EQ(s.scale(), 64);
  EXPECT_EQ(s.skipped_steps(), 0);
}

TEST(LossScaler, OverflowSkipsAndHalvesOnceHysteresisIsSpent) {
  LossScaler s(small(16, 3, 2, 1));
  EXPECT_FALSE(s.update(true));  // first overflow: hysteresis 2 -> 1, scale kept
  EXPECT_DOUBLE_EQ(s.scale(), 16);
  EXPECT_EQ(s.hysteresis_left(), 1);
  EXPECT_FALSE(s.update(true));  // second: halves
  EXPECT_DOUBLE_EQ(s.scale(), 8);
  EXPECT_FALSE(s.update(true));  // hysteresis stays spent: halves again
  EXPECT_DOUBLE_EQ(s.scale(), 4);
  EXPECT_EQ(s.skipped_steps(), 3);
  // Growth counts from the last overflow (iteration 2): clean iterations 3 and 4 do not reach the
  // window, iteration 5 does, and restores the hysteresis.
  EXPECT_TRUE(s.update(false));
  EXPECT_TRUE(s.update(false));
  EXPECT_DOUBLE_EQ(s.scale(), 4);
  EXPECT_EQ(s.hysteresis_left(), 1);
  EXPECT_TRUE(s.update(false));
  EXPECT_DOUBLE_EQ(s.scale(), 8);
  EXPECT_EQ(s.hysteresis_left(), 2);
  EXPECT_EQ(s.iteration(), 6);
}

TEST(LossScaler, ConsecutiveHysteresisRestoresOnEveryCleanStep) {
  LossScalerConfig c = small(16, 100, 2, 1);
  LossScaler plain(c);
  c.consecutive_hysteresis = true;
  LossScaler consecutive(c);
  for (LossScaler* s : {&plain, &consecutive}) {
    s->update(true);
    s->update(false);
    s->update(true);
  }
  EXPECT_DOUBLE_EQ(plain.scale(), 8);         // the clean step did not restore the hysteresis
  EXPECT_DOUBLE_EQ(consecutive.scale(), 16);  // it did: the second overflow only spent it again
  EXPECT_EQ(consecutive.hysteresis_left(), 1);
}

TEST(LossScaler, NeverBelowTheMinimumAndAnErrorAtIt) {
  LossScaler s(small(8, 1000, 1, 3));
  s.update(true);
  EXPECT_DOUBLE_EQ(s.scale(), 4);
  s.update(true);
  EXPECT_DOUBLE_EQ(s.scale(), 3);  // max(4 / 2, 3)
  try {
    s.update(true);
    FAIL() << "expected an error at the minimum scale";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("loss scale already at its minimum 3"), std::string::npos) << msg;
    EXPECT_NE(msg.find("Current loss scale already at minimum"), std::string::npos) << msg;
  }
  LossScalerConfig lenient = small(2, 1000, 1, 1);
  lenient.error_at_min_scale = false;
  LossScaler l(lenient);
  l.update(true);
  EXPECT_FALSE(l.update(true));
  EXPECT_DOUBLE_EQ(l.scale(), 1);
}

TEST(LossScaler, StaticScaleSkipsWithoutChanging) {
  LossScaler s(LossScalerConfig{1024});
  EXPECT_FALSE(s.dynamic());
  EXPECT_FALSE(s.update(true));
  EXPECT_TRUE(s.update(false));
  EXPECT_DOUBLE_EQ(s.scale(), 1024);
  EXPECT_EQ(s.skipped_steps(), 1);
  EXPECT_DOUBLE_EQ(LossScaler::unit().scale(), 1.0);
}

TEST(LossScaler, StateRoundTrips) {
  LossScaler s(small(16, 3, 2, 1));
  s.update(true);
  s.update(true);
  s.update(false);
  LossScaler t(small(16, 3, 2, 1));
  t.load_state_dict(s.state_dict());
  EXPECT_DOUBLE_EQ(t.scale(), s.scale());
  EXPECT_EQ(t.iteration(), 3);
  EXPECT_EQ(t.hysteresis_left(), s.hysteresis_left());
  EXPECT_EQ(t.skipped_steps(), 2);
  for (int i = 0; i < 3; ++i) {
    s.update(false);
    t.update(false);
  }
  EXPECT_DOUBLE_EQ(t.scale(), s.scale());
  EXPECT_THROW(t.load_state_dict({{"cur_scale", -1}}), Error);
}

}  // namespace
}  // namespace zt::optim
