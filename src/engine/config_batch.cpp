#include "engine/config_batch.hpp"

#include "zt/core/error.hpp"

namespace zt::engine {

BatchSizes resolve_batch_sizes(std::optional<int64_t> train, std::optional<int64_t> micro,
                               std::optional<int64_t> gas, int world_size, const std::string& source) {
  ZT_CHECK(world_size > 0, source, ": the world size must be positive, got ", world_size);
  const int64_t w = world_size;
  BatchSizes b;
  if (train && micro && gas) {
    b = {*train, *micro, *gas};
    ZT_CHECK(*train == *micro * *gas * w, source,
             ": train_batch_size, train_micro_batch_size_per_gpu and gradient_accumulation_steps disagree: "
             "train_batch_size must equal train_micro_batch_size_per_gpu * gradient_accumulation_steps * world size, "
             "but ", *train, " != ", *micro, " * ", *gas, " * ", w, " = ", *micro * *gas * w,
             " (give any two of the three and the third follows)");
    return b;
  }
  if (train && micro) {
    ZT_CHECK(*train % (*micro * w) == 0, source, ": train_batch_size ", *train,
             " is not divisible by train_micro_batch_size_per_gpu * world size = ", *micro, " * ", w, " = ", *micro * w,
             ", so gradient_accumulation_steps = ", *train, " / ", *micro * w, " is not a whole number");
    return {*train, *micro, *train / (*micro * w)};
  }
  if (train && gas) {
    ZT_CHECK(*train % (*gas * w) == 0, source, ": train_batch_size ", *train,
             " is not divisible by gradient_accumulation_steps * world size = ", *gas, " * ", w, " = ", *gas * w,
             ", so train_micro_batch_size_per_gpu = ", *train, " / ", *gas * w, " is not a whole number");
    return {*train, *train / (*gas * w), *gas};
  }
  if (micro && gas) return {*micro * *gas * w, *micro, *gas};
  if (train) {
    ZT_CHECK(*train % w == 0, source, ": train_batch_size ", *train, " is not divisible by the world size ", w,
             " (with train_batch_size alone each rank takes train_batch_size / world size per step; give "
             "train_micro_batch_size_per_gpu or gradient_accumulation_steps too)");
    return {*train, *train / w, 1};
  }
  if (micro) return {*micro * w, *micro, 1};
  ZT_THROW(source, ": give train_batch_size or train_micro_batch_size_per_gpu (or both, or either with "
                   "gradient_accumulation_steps)",
           gas ? "; gradient_accumulation_steps alone does not fix the batch size" : "");
}

}  // namespace zt::engine
