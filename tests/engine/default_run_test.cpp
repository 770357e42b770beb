// The default `zt train` run: it must get within 10% of the synthetic corpus's entropy floor,
// and its loss curve must follow the golden one kept in tests/golden.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "zt/engine/config.hpp"
#include "zt/engine/trainer.hpp"

namespace zt::engine {
namespace {

TEST(DefaultRun, ReachesTheEntropyFloorAndFollowsTheGoldenCurve) {
  TrainOptions options;  // the defaults are the default run
  options.threads = 2;   // the golden curve was recorded with two threads
  const TrainResult result = train(options, [](const std::string&) {});
  ASSERT_GT(result.entropy_floor, 0);
  EXPECT_LT(result.final_loss, 1.10 * result.entropy_floor)
      << "final loss " << result.final_loss << " vs floor " << result.entropy_floor;

  std::ifstream in(std::string(ZT_GOLDEN_DIR) + "/default_run_loss.json");
  ASSERT_TRUE(in.good()) << "missing golden file";
  const auto golden = nlohmann::json::parse(in);
  ASSERT_EQ(golden["loss"].size(), result.steps.size());
  EXPECT_NEAR(golden["entropy_floor"].get<double>(), result.entropy_floor, 1e-9);
  // Early steps must agree closely; later ones drift with the order of float sums (BLAS, threads),
  // so the bound widens, staying well below the loss's own step-to-step noise.
  for (size_t i = 0; i < result.steps.size(); ++i) {
    const double want = golden["loss"][i].get<double>();
    const double tolerance = i < 20 ? 1e-4 : 0.03;
    EXPECT_NEAR(result.steps[i].loss, want, tolerance * want) << "step " << i + 1;
  }
}

TEST(TrainOptions, BadValuesNameTheFlag) {
  TrainOptions options;
  options.steps = 0;
  try {
    validate(options);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--steps"), std::string::npos) << e.what();
  }
  options = TrainOptions{};
  options.seq_len = 4096;
  EXPECT_THROW(train(options, [](const std::string&) {}), Error);
  options = TrainOptions{};
  options.model = "gpt7";
  try {
    make_model(options);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("gpt2-tiny"), std::string::npos) << "lists the known models: " << e.what();
  }
}

TEST(TrainOptions, BecomeAnEngineConfig) {
  TrainOptions o;
  o.lr = 0.01;
  o.batch_size = 6;
  o.grad_clip = 0.5;
  const Config c = engine_config(o, 2);
  EXPECT_EQ(c.train_micro_batch_size_per_gpu, 6);
  EXPECT_EQ(c.train_batch_size, 12);
  EXPECT_EQ(c.gradient_accumulation_steps, 1);
  EXPECT_EQ(c.zero.stage, 0);
  EXPECT_DOUBLE_EQ(c.gradient_clipping, 0.5);
  ASSERT_TRUE(c.optimizer.has_value());
  EXPECT_DOUBLE_EQ(c.optimizer->params["lr"].get<double>(), 0.01);
  EXPECT_EQ(c.scheduler.type, "WarmupCosineLR");
}

}  // namespace
}  // namespace zt::engine
