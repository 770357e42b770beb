// Training throughput of the CPU benchmark model (GPT-2 shape: vocab 512, 256 wide, 4 layers,
// 4 heads, T=256, B=8, f32, AdamW, tied embeddings) on one process. Prints one JSON line.
// Usage: bench_cpu_train [steps] [threads]
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "zt/engine/trainer.hpp"

int main(int argc, char** argv) {
  zt::engine::TrainOptions o;
  o.model = "gpt2-cpu-bench";
  o.batch_size = 8;
  o.seq_len = 256;
  o.steps = argc > 1 ? std::atoll(argv[1]) : 21;  // the first step is not timed
  o.threads = argc > 2 ? std::atoi(argv[2]) : 2;
  o.lr = 3e-4;
  o.warmup_steps = 0;
  o.weight_decay = 0.01;
  o.beta2 = 0.999;
  o.grad_clip = 0;  // the peer does not clip
  o.log_every = 1000000;
  try {
    const auto r = zt::engine::train(o, [](const std::string&) {});
    nlohmann::json j;
    j["impl"] = "zt";
    j["model"] = o.model;
    j["params"] = r.parameters;
    j["B"] = o.batch_size;
    j["T"] = o.seq_len;
    j["threads"] = o.threads;
    j["steps_timed"] = o.steps - 1;
    j["tokens_per_s"] = r.tokens_per_s;
    j["ms_per_step"] = 1e3 * double(o.batch_size * o.seq_len) / r.tokens_per_s;
    j["final_loss"] = r.steps.back().loss;
    std::printf("%s\n", j.dump().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cpu_train: %s\n", e.what());
    return 1;
  }
  return 0;
}
