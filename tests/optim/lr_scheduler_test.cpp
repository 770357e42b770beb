// Each schedule against DeepSpeed's formulas at chosen steps (values worked out by hand from
// deepspeed/runtime/lr_schedules.py), the factory's parameter checks, and the saved state.
#include <gtest/gtest.h>

#include <cmath>

#include "error_text.hpp"
#include "zt/core/error.hpp"
#include "zt/engine/config.hpp"
#include "zt/optim/lr_scheduler.hpp"

namespace zt::optim {
namespace {

using nlohmann::json;

using zt::test::error_of;

TEST(WarmupLR, LogWarmupThenConstant) {
  auto s = make_scheduler("WarmupLR", {{"warmup_min_lr", 0}, {"warmup_max_lr", 0.01}, {"warmup_num_steps", 10}}, 1.0);
  EXPECT_EQ(s->name(), "WarmupLR");
  EXPECT_EQ(s->last_step(), -1);
  EXPECT_DOUBLE_EQ(s->lr(), 0.0);        // before any step: warmup_min_lr
  EXPECT_DOUBLE_EQ(s->lr_at(0), 0.0);    // log(1) / log(10)
  EXPECT_NEAR(s->lr_at(1), 0.0030102999566398118, 1e-15);  // 0.01 log 2 / log 10
  EXPECT_NEAR(s->lr_at(4), 0.006989700043360187, 1e-15);   // 0.01 log 5 / log 10
  EXPECT_DOUBLE_EQ(s->lr_at(9), 0.01);
  EXPECT_DOUBLE_EQ(s->lr_at(10), 0.01);
  EXPECT_DOUBLE_EQ(s->lr_at(1000), 0.01);
  s->step();
  s->step();
  EXPECT_EQ(s->last_step(), 1);
  EXPECT_DOUBLE_EQ(s->lr(), s->lr_at(1));
}

TEST(WarmupLR, LinearWarmupAndTheOptimizersLrAsMaximum) {
  auto s = make_scheduler("warmuplr", {{"warmup_min_lr", 0.001}, {"warmup_num_steps", 10}, {"warmup_type", "linear"}},
                          0.021);
  EXPECT_DOUBLE_EQ(s->lr_at(-1), 0.001);
  EXPECT_DOUBLE_EQ(s->lr_at(0), 0.001);
  EXPECT_DOUBLE_EQ(s->lr_at(5), 0.001 + 0.02 * 0.5);
  EXPECT_DOUBLE_EQ(s->lr_at(10), 0.021);  // warmup_max_lr defaults to the optimizer's lr
}

TEST(WarmupLR, WarmupShorterThanTwoStepsIsTwo) {
  auto s = make_scheduler("WarmupLR", {{"warmup_max_lr", 1.0}, {"warmup_num_steps", 0}, {"warmup_type", "linear"}},
                          1.0);
  EXPECT_DOUBLE_EQ(s->lr_at(1), 0.5);  // W = max(2, 0)
  EXPECT_DOUBLE_EQ(s->lr_at(2), 1.0);
}

TEST(WarmupDecayLR, LinearDecayToZero) {
  auto s = make_scheduler("WarmupDecayLR",
                          {{"total_num_steps", 20}, {"warmup_max_lr", 0.01}, {"warmup_num_steps", 10}}, 1.0);
  EXPECT_NEAR(s->lr_at(1), 0.0030102999566398118, 1e-15);
  EXPECT_DOUBLE_EQ(s->lr_at(10), 0.01);   // (20 - 10) / (20 - 10)
  EXPECT_DOUBLE_EQ(s->lr_at(15), 0.005);  // (20 - 15) / 10
  EXPECT_DOUBLE_EQ(s->lr_at(20), 0.0);
  EXPECT_DOUBLE_EQ(s->lr_at(25), 0.0);  // clamped at 0
  // warmup_max_lr keeps DeepSpeed's old default 0.001 here, whatever the optimizer's lr.
  auto d = make_scheduler("WarmupDecayLR", {{"total_num_steps", 20}, {"warmup_num_steps", 10}}, 0.5);
  EXPECT_DOUBLE_EQ(d->lr_at(10), 0.001);
}

TEST(WarmupCosineLR, RatiosOfTheOptimizersLr) {
  auto s = make_scheduler("WarmupCosineLR",
                          {{"total_num_steps", 20}, {"warmup_num_steps", 10}, {"warmup_type", "linear"}}, 0.1);
  EXPECT_DOUBLE_EQ(s->lr(), 0.0);  // DeepSpeed: 0 before the first step
  EXPECT_DOUBLE_EQ(s->lr_at(0), 0.0);
  EXPECT_DOUBLE_EQ(s->lr_at(5), 0.05);
  EXPECT_NEAR(s->lr_at(10), 0.09755307053217621, 1e-15);  // 1e-4 + 0.9999 (1 + cos(pi / 10)) / 2
  EXPECT_NEAR(s->lr_at(14), 0.050005, 1e-15);             // cos(pi / 2) = 0
  EXPECT_NEAR(s->lr_at(19), 1e-5, 1e-15);                 // the floor cos_min_ratio
  EXPECT_NEAR(s->lr_at(25), 0.06545430463377548, 1e-15);  // no clamp past T, as in DeepSpeed

  auto w = make_scheduler("WarmupCosineLR", {{"total_num_steps", 20}, {"warmup_num_steps", 10},
                                             {"warmup_min_ratio", 0.2}}, 0.1);
  EXPECT_NEAR(w->lr_at(0), 0.02, 1e-15);
  EXPECT_NEAR(w->lr_at(3), 0.06816479930623698, 1e-15);  // 0.1 (0.2 + 0.8 log 4 / log 10)
  EXPECT_NEAR(w->lr_at(9), 0.1, 1e-15);
}

TEST(OneCycle, CycleThenDecayWithMomentum) {
  auto s = make_scheduler("OneCycle",
                          {{"cycle_min_lr", 0.001}, {"cycle_max_lr", 0.01}, {"cycle_first_step_size", 4},
                           {"decay_step_size", 2}, {"decay_lr_rate", 0.5}, {"cycle_min_mom", 0.85},
                           {"cycle_max_mom", 0.95}, {"decay_mom_rate", 0.1}},
                          1.0);
  auto& one = dynamic_cast<OneCycle&>(*s);
  EXPECT_DOUBLE_EQ(s->lr(), 0.001);
  EXPECT_EQ(one.betas(), (std::pair{0.85, 0.99}));  // set at construction
  EXPECT_DOUBLE_EQ(s->lr_at(0), 0.00325);           // scale 0.25
  EXPECT_DOUBLE_EQ(one.betas_at(0)->first, 0.925);
  EXPECT_DOUBLE_EQ(s->lr_at(3), 0.01);  // the peak: scale 1
  EXPECT_DOUBLE_EQ(one.betas_at(3)->first, 0.85);
  EXPECT_DOUBLE_EQ(s->lr_at(5), 0.0055);  // down again: scale 0.5
  EXPECT_DOUBLE_EQ(one.betas_at(5)->first, 0.9);
  EXPECT_DOUBLE_EQ(s->lr_at(7), 0.001);
  EXPECT_DOUBLE_EQ(one.betas_at(7)->first, 0.95);
  EXPECT_DOUBLE_EQ(s->lr_at(8), 0.0008);  // decay: 0.001 / (1 + 0.5 * 1 / 2)
  EXPECT_DOUBLE_EQ(one.betas_at(8)->first, 0.9975);
  EXPECT_DOUBLE_EQ(s->lr_at(11), 0.0005);
  EXPECT_DOUBLE_EQ(one.betas_at(11)->second, 0.99);
  s->step();
  EXPECT_DOUBLE_EQ(one.betas()->first, 0.925);
}

TEST(OneCycle, NoDecayWithoutDecayStepSizeAndNoMomentumWhenOff) {
  auto s = make_scheduler("OneCycle",
                          {{"cycle_min_lr", 0.1}, {"cycle_max_lr", 1.0}, {"cycle_first_step_size", 2},
                           {"cycle_second_step_size", 6}, {"decay_lr_rate", 0.5}, {"cycle_momentum", false}},
                          1.0);
  EXPECT_DOUBLE_EQ(s->lr_at(1), 1.0);  // bi 2 of S 8: x = 0.25 = ratio
  EXPECT_DOUBLE_EQ(s->lr_at(4), 0.1 + 0.9 * 0.5);  // x = 0.625: (0.625 - 1) / (0.25 - 1)
  EXPECT_DOUBLE_EQ(s->lr_at(100), 0.1);  // decay_step_size 0: stays at the minimum
  EXPECT_FALSE(s->betas().has_value());
}

TEST(LRRangeTest, ContinuousAndStaircase) {
  auto s = make_scheduler("LRRangeTest", {{"lr_range_test_min_lr", 0.001}, {"lr_range_test_step_size", 10},
                                          {"lr_range_test_step_rate", 2.0}}, 1.0);
  EXPECT_DOUBLE_EQ(s->lr(), 0.001);
  EXPECT_DOUBLE_EQ(s->lr_at(4), 0.002);
  EXPECT_DOUBLE_EQ(s->lr_at(9), 0.003);
  auto st = make_scheduler("LRRangeTest", {{"lr_range_test_min_lr", 0.001}, {"lr_range_test_step_size", 10},
                                           {"lr_range_test_step_rate", 2.0}, {"lr_range_test_staircase", true}},
                           1.0);
  EXPECT_DOUBLE_EQ(st->lr_at(4), 0.001);
  EXPECT_DOUBLE_EQ(st->lr_at(9), 0.003);
  EXPECT_DOUBLE_EQ(st->lr_at(19), 0.005);
}

TEST(LRScheduler, StateRoundTripsAndStartsWhereSaid) {
  auto s = make_scheduler("WarmupLR", {{"warmup_max_lr", 0.01}, {"warmup_num_steps", 10}}, 1.0);
  for (int i = 0; i < 5; ++i) s->step();
  const json state = s->state_dict();
  EXPECT_EQ(state, (json{{"last_batch_iteration", 4}}));
  auto t = make_scheduler("WarmupLR", {{"warmup_max_lr", 0.01}, {"warmup_num_steps", 10}}, 1.0);
  t->load_state_dict(state);
  EXPECT_EQ(t->last_step(), 4);
  EXPECT_DOUBLE_EQ(t->lr(), s->lr());
  EXPECT_NE(error_of([&] { t->load_state_dict({{"step", 3}}); }).find("last_batch_iteration"), std::string::npos);
  auto r = make_scheduler("WarmupLR", {{"warmup_max_lr", 0.01}, {"last_batch_iteration", 9}}, 1.0);
  EXPECT_EQ(r->last_step(), 9);
}

TEST(LRScheduler, ParameterErrorsNameTheKey) {
  EXPECT_NE(error_of([] { make_scheduler("WarmupLR", {{"warmup_max_lr", 0.01}, {"warmup_steps", 10}}, 1.0); })
                .find("unknown key 'scheduler.params.warmup_steps' (did you mean 'warmup_num_steps'?)"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_scheduler("WarmupDecayLR", {{"warmup_num_steps", 10}}, 1.0); })
                .find("scheduler.params.total_num_steps: required by WarmupDecayLR"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_scheduler("WarmupLR", {{"warmup_num_steps", "ten"}}, 1.0); })
                .find("scheduler.params.warmup_num_steps = \"ten\": expected an integer >= 0"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_scheduler("WarmupLR", {{"warmup_type", "cosine"}}, 1.0); })
                .find("expected one of \"log\", \"linear\""),
            std::string::npos);
  EXPECT_NE(error_of([] { make_scheduler("OneCycle", {{"cycle_max_lr", 0.1}}, 1.0); })
                .find("cycle_min_lr: required by OneCycle"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_scheduler("WarmupCosineLR", {{"total_num_steps", 10}, {"warmup_num_steps", 10}}, 1.0); })
                .find("must exceed warmup_num_steps"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_scheduler("WarmupCosine", json::object(), 1.0); })
                .find("unknown schedule (did you mean 'WarmupCosineLR'?)"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_scheduler("WarmupLR", {{"warmup_max_lr", "auto"}}, 1.0); }).find("placeholder"),
            std::string::npos);
}

TEST(LRScheduler, FromTheConfigStruct) {
  engine::SchedulerConfig none;
  EXPECT_EQ(make_scheduler(none, 0.1), nullptr);
  engine::SchedulerConfig c{"WarmupLR", {{"warmup_num_steps", 4}}};
  EXPECT_DOUBLE_EQ(make_scheduler(c, 0.1)->lr_at(4), 0.1);
}

}  // namespace
}  // namespace zt::optim
