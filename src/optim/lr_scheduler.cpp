// The schedule base (state) and make_scheduler, which reads DeepSpeed's "scheduler" params.
#include "zt/optim/lr_scheduler.hpp"

#include <algorithm>
#include <cctype>

#include "io/near_name.hpp"
#include "zt/core/error.hpp"
#include "zt/core/json_reader.hpp"
#include "zt/engine/config.hpp"

namespace zt::optim {

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return s;
}

int64_t read_last(JsonReader& r) { return r.get_int("last_batch_iteration", -1, Bounds::at_least(-1)); }

WarmupType read_warmup_type(JsonReader& r) {
  return r.get_choice("warmup_type", "log", {"log", "linear"}) == "log" ? WarmupType::log : WarmupType::linear;
}

WarmupLRConfig read_warmup(JsonReader& r) {
  WarmupLRConfig c;
  c.warmup_min_lr = r.get_number("warmup_min_lr", 0.0, Bounds::at_least(0));
  c.warmup_max_lr = r.get_optional_number("warmup_max_lr", Bounds::at_least(0));
  c.warmup_num_steps = r.get_int("warmup_num_steps", 1000, Bounds::at_least(0));
  c.warmup_type = read_warmup_type(r);
  c.last_batch_iteration = read_last(r);
  return c;
}

int64_t read_required_int(JsonReader& r, const std::string& key, Bounds bounds, const std::string& type) {
  const std::optional<int64_t> v = r.get_optional_int(key, bounds);
  if (!v) r.fail(key, str("required by ", type, " (", bounds.describe(true), ")"));
  return *v;
}

double read_required_number(JsonReader& r, const std::string& key, Bounds bounds, const std::string& type) {
  const std::optional<double> v = r.get_optional_number(key, bounds);
  if (!v) r.fail(key, str("required by ", type, " (", bounds.describe(false), ")"));
  return *v;
}

std::unique_ptr<LRScheduler> make_one_cycle(JsonReader& r) {
  OneCycleConfig c;
  c.cycle_min_lr = read_required_number(r, "cycle_min_lr", Bounds::at_least(0), "OneCycle");
  c.cycle_max_lr = read_required_number(r, "cycle_max_lr", Bounds::at_least(0), "OneCycle");
  c.decay_lr_rate = r.get_number("decay_lr_rate", 0.0);
  c.cycle_first_step_size = r.get_int("cycle_first_step_size", 2000, Bounds::at_least(1));
  c.cycle_second_step_size = r.get_optional_int("cycle_second_step_size", Bounds::at_least(0));
  c.cycle_first_stair_count = r.get_int("cycle_first_stair_count", 0, Bounds::at_least(0));
  c.cycle_second_stair_count = r.get_optional_int("cycle_second_stair_count", Bounds::at_least(0));
  c.decay_step_size = r.get_int("decay_step_size", 0, Bounds::at_least(0));
  c.cycle_momentum = r.get_bool("cycle_momentum", true);
  c.cycle_min_mom = r.get_number("cycle_min_mom", 0.8, Bounds::between(0, 1));
  c.cycle_max_mom = r.get_number("cycle_max_mom", 0.9, Bounds::between(0, 1));
  c.decay_mom_rate = r.get_number("decay_mom_rate", 0.0);
  c.last_batch_iteration = read_last(r);
  r.finish();
  return std::make_unique<OneCycle>(c);
}

std::unique_ptr<LRScheduler> make_range_test(JsonReader& r) {
  LRRangeTestConfig c;
  c.lr_range_test_min_lr = r.get_number("lr_range_test_min_lr", 1e-3, Bounds::at_least(0));
  c.lr_range_test_step_size = r.get_int("lr_range_test_step_size", 2000, Bounds::at_least(1));
  c.lr_range_test_step_rate = r.get_number("lr_range_test_step_rate", 1.0);
  c.lr_range_test_staircase = r.get_bool("lr_range_test_staircase", false);
  c.last_batch_iteration = read_last(r);
  r.finish();
  return std::make_unique<LRRangeTest>(c);
}

}  // namespace

nlohmann::json LRScheduler::state_dict() const { return {{"last_batch_iteration", last_step_}}; }

void LRScheduler::load_state_dict(const nlohmann::json& state) {
  ZT_CHECK(state.is_object() && state.contains("last_batch_iteration") &&
               state["last_batch_iteration"].is_number_integer(),
           name(), ": the saved scheduler state must be {\"last_batch_iteration\": <integer>}, got ",
           json_value_str(state));
  const int64_t i = state["last_batch_iteration"].get<int64_t>();
  ZT_CHECK(i >= -1, name(), ": saved last_batch_iteration ", i, " is below -1");
  last_step_ = i;
}

std::vector<std::string> scheduler_types() {
  return {"WarmupLR", "WarmupDecayLR", "WarmupCosineLR", "OneCycle", "LRRangeTest"};
}

std::unique_ptr<LRScheduler> make_scheduler(const std::string& type, const nlohmann::json& params, double base_lr,
                                            const std::string& source) {
  std::string canonical;
  for (const std::string& t : scheduler_types())
    if (lower(t) == lower(type)) canonical = t;
  if (canonical.empty()) {
    std::string all;
    for (const std::string& t : scheduler_types()) all += (all.empty() ? "" : ", ") + t;
    ZT_THROW(source, ": scheduler.type = \"", type, "\": unknown schedule",
             io::did_you_mean(type, scheduler_types()), "; the schedules are: ", all);
  }
  JsonReader r(params, "scheduler.params", source);
  if (canonical == "WarmupLR") {
    const WarmupLRConfig c = read_warmup(r);
    r.finish();
    return std::make_unique<WarmupLR>(c, base_lr);
  }
  if (canonical == "WarmupDecayLR") {
    WarmupDecayLRConfig c;
    c.total_num_steps = read_required_int(r, "total_num_steps", Bounds::at_least(1), canonical);
    c.warmup = read_warmup(r);
    r.finish();
    return std::make_unique<WarmupDecayLR>(c);
  }
  if (canonical == "WarmupCosineLR") {
    WarmupCosineLRConfig c;
    c.total_num_steps = read_required_int(r, "total_num_steps", Bounds::at_least(1), canonical);
    c.warmup_min_ratio = r.get_number("warmup_min_ratio", 0.0, Bounds::between(0, 1));
    c.warmup_num_steps = r.get_int("warmup_num_steps", 1000, Bounds::at_least(0));
    c.cos_min_ratio = r.get_number("cos_min_ratio", 0.0001, Bounds::between(0, 1));
    c.warmup_type = read_warmup_type(r);
    c.last_batch_iteration = read_last(r);
    r.finish();
    if (c.total_num_steps <= std::max<int64_t>(2, c.warmup_num_steps))
      r.fail("total_num_steps", str("must exceed warmup_num_steps (", std::max<int64_t>(2, c.warmup_num_steps),
                                    ", at least 2): the cosine runs over the steps after the warmup"));
    return std::make_unique<WarmupCosineLR>(c, base_lr);
  }
  if (canonical == "OneCycle") return make_one_cycle(r);
  return make_range_test(r);
}

std::unique_ptr<LRScheduler> make_scheduler(const engine::SchedulerConfig& config, double base_lr,
                                            const std::string& source) {
  if (config.type.empty()) return nullptr;
  return make_scheduler(config.type, config.params, base_lr, source);
}

}  // namespace zt::optim
