// Parity with Hugging Face transformers on the GPU: the tiny GPT-2 and Llama fixtures (see
// hf_parity_test.cpp) run with every parameter and the token ids on CUDA, in f32; logits, loss,
// every gradient and one AdamW step against PyTorch's, to the CPU test's tolerances.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "zt/core/device.hpp"
#include "zt/io/safetensors.hpp"
#include "zt/models/causal_lm.hpp"
#include "zt/nn/loss.hpp"
#include "zt/optim/adamw.hpp"

namespace zt {
namespace {

// The fixtures folder: $ZT_FIXTURES_DIR when set (binaries run away from their build tree), else
// the one configured at build time.
std::string fixture(const std::string& model) {
  const char* env = std::getenv("ZT_FIXTURES_DIR");
  return std::string(env && *env ? env : ZT_FIXTURES_DIR) + "/hf/" + model;
}

double relative_error(const Tensor& a, const Tensor& b) {  // ||a - b|| / ||b||, any devices
  const auto x = a.to_floats(), y = b.to_floats();
  EXPECT_EQ(x.size(), y.size());
  double diff = 0, norm = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
    diff += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
    norm += double(y[i]) * y[i];
  }
  return std::sqrt(diff) / (std::sqrt(norm) + 1e-30);
}

class HfParityCuda : public ::testing::TestWithParam<std::string> {};

TEST_P(HfParityCuda, LogitsLossGradientsAndOneAdamWStep) {
  if (!cuda_is_available()) GTEST_SKIP() << "no CUDA device here: this test runs on a GPU machine (scripts/gpu-test)";
  const std::string dir = fixture(GetParam());
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << "no fixtures at " << dir;
  auto model = models::load_pretrained(dir);
  const auto params = model->named_parameters();
  for (const auto& [name, p] : params) p->data = p->data.to(Device::cuda());
  io::SafetensorsReader ref(dir + "/reference.safetensors");

  const Tensor ids = ref.read_as("input_ids", DType::i32).to(Device::cuda());
  const Tensor labels = ref.read_as("labels", DType::i32).to(Device::cuda());
  const Tensor logits = model->forward(ids);
  ASSERT_TRUE(logits.device().is_cuda());
  const Tensor ref_logits = ref.read_as("logits", DType::f32);
  ASSERT_EQ(logits.shape(), ref_logits.shape());
  const double logits_error = relative_error(logits, ref_logits);
  EXPECT_LT(logits_error, 1e-5) << "logits";

  nn::CrossEntropyLoss loss_fn;
  const double loss = loss_fn.forward(logits, models::shift_labels(labels));
  const double ref_loss = ref.read_as("loss", DType::f32).item();
  EXPECT_LT(std::fabs(loss - ref_loss) / std::fabs(ref_loss), 1e-5) << "loss " << loss << " vs " << ref_loss;

  model->zero_grad();
  model->backward(loss_fn.backward());
  double worst_grad = 0;
  for (const auto& [name, p] : params) {
    ASSERT_TRUE(p->grad.defined() && p->grad.device().is_cuda()) << name;
    const double err = relative_error(p->grad, ref.read_as("grad." + name, DType::f32));
    worst_grad = std::max(worst_grad, err);
    EXPECT_LT(err, 1e-4) << "grad." << name;
  }
  std::printf("%s on cuda: logits %.3g, loss %.3g, worst gradient %.3g (relative errors)\n", GetParam().c_str(),
              logits_error, std::fabs(loss - ref_loss) / std::fabs(ref_loss), worst_grad);

  // One AdamW step on the GPU from our gradients, checked where the reference gradient stands
  // clear of rounding noise (see hf_parity_test.cpp).
  std::ifstream in(dir + "/reference.json");
  const auto hp = nlohmann::json::parse(in)["adamw"];
  const optim::AdamWConfig config{hp["betas"][0].get<double>(), hp["betas"][1].get<double>(), hp["eps"].get<double>(),
                                  hp["weight_decay"].get<double>(), true};
  std::vector<optim::StepTarget> targets;
  for (size_t i = 0; i < params.size(); ++i) targets.push_back({int64_t(i), params[i].second->data, params[i].second->grad});
  optim::AdamW(config).step(targets, hp["lr"].get<double>(), 1.0);
  for (const auto& [name, p] : params) {
    const auto got = p->data.to_floats(), want = ref.read_as("adamw." + name, DType::f32).to_floats();
    const auto grad = ref.read_as("grad." + name, DType::f32).to_floats();
    for (size_t j = 0; j < got.size(); ++j) {
      if (std::fabs(grad[j]) < 1e-6) continue;
      ASSERT_NEAR(got[j], want[j], 1e-6) << "adamw." << name << "[" << j << "], grad " << grad[j];
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, HfParityCuda, ::testing::Values("tiny-gpt2", "tiny-llama"));

}  // namespace
}  // namespace zt
