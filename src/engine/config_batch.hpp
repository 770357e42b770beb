// DeepSpeed's batch rule: train_batch_size = train_micro_batch_size_per_gpu *
// gradient_accumulation_steps * world size; any two of the three give the third.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace zt::engine {

struct BatchSizes {
  int64_t train_batch_size = 0, micro_batch_per_gpu = 0, gradient_accumulation_steps = 0;
};

// Fills in what is missing (micro batch alone: one accumulation step; train batch alone: one
// accumulation step and train / world per rank) and checks that the three agree; an error names
// the settings that disagree and shows the arithmetic. source names the config in messages.
BatchSizes resolve_batch_sizes(std::optional<int64_t> train_batch_size, std::optional<int64_t> micro_batch_per_gpu,
                               std::optional<int64_t> gradient_accumulation_steps, int world_size,
                               const std::string& source);

}  // namespace zt::engine
