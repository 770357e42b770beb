// CPU AdamW throughput: the vectorized step (with and without the bf16 copy) and the scalar
// reference loop on N f32 parameters. Prints one JSON line per configuration.
//   bench_cpu_adam [N=50000000] [steps=5]
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "../src/kernels/cpu/cpu_ops.hpp"

int main(int argc, char** argv) {
  const int64_t n = argc > 1 ? std::atoll(argv[1]) : 50000000;
  const int steps = argc > 2 ? std::atoi(argv[2]) : 5;
  std::vector<float> param(static_cast<size_t>(n)), grad(static_cast<size_t>(n)), m(static_cast<size_t>(n), 0.0f), v(static_cast<size_t>(n), 0.0f);
  std::vector<uint16_t> bf16(static_cast<size_t>(n));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    param[size_t(i)] = float(i % 1000) * 1e-3f;
    grad[size_t(i)] = float(i % 777) * 1e-4f - 0.03f;
  }
  const char* isa = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") ? "avx512" : "avx2";
  zt::ops::AdamWParams p;
  p.lr = 1e-3;
  p.weight_decay = 0.1;
  for (const char* variant : {"zt-fast", "zt-fast+bf16", "zt-reference"}) {
    const std::string name = variant;
    auto run = [&](int64_t step) {
      p.step = step;
      if (name == "zt-reference")
        zt::cpu::adamw_step_reference(param.data(), grad.data(), m.data(), v.data(), n, p, 1.0);
      else
        zt::cpu::adamw_step(param.data(), grad.data(), m.data(), v.data(), n, p, 1.0,
                            name == "zt-fast+bf16" ? bf16.data() : nullptr);
    };
    run(1);
    const auto start = std::chrono::steady_clock::now();
    for (int s = 0; s < steps; ++s) run(2 + s);
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / steps;
    std::printf("{\"impl\": \"%s\", \"isa\": \"%s\", \"params\": %lld, \"threads\": %d, \"s_per_step\": %.6f, "
                "\"params_per_s\": %.4g}\n",
                variant, isa, (long long)n, omp_get_max_threads(), dt, double(n) / dt);
    std::fflush(stdout);
  }
}
