#include "zt/engine/trainer.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "zt/comm/process_group.hpp"
#include "zt/core/device.hpp"
#include "zt/core/memory_stats.hpp"
#include "zt/core/op_profile.hpp"
#include "zt/core/storage.hpp"
#include "zt/core/timer.hpp"
#include "zt/data/markov_corpus.hpp"
#include "zt/data/token_dataset.hpp"
#include "zt/engine/config.hpp"
#include "zt/engine/engine.hpp"
#include "zt/models/builtin.hpp"
#include "zt/nn/loss.hpp"

namespace zt::engine {

void validate(const TrainOptions& o) {
  ZT_CHECK(o.steps > 0, "--steps must be positive, got ", o.steps);
  ZT_CHECK(o.batch_size > 0, "--batch-size must be positive, got ", o.batch_size);
  ZT_CHECK(o.seq_len > 0, "--seq-len must be positive, got ", o.seq_len);
  ZT_CHECK(o.lr > 0 && std::isfinite(o.lr), "--lr must be a positive number, got ", o.lr);
  ZT_CHECK(o.warmup_steps >= 0, "--warmup must be >= 0, got ", o.warmup_steps);
  ZT_CHECK(o.min_lr_ratio >= 0 && o.min_lr_ratio <= 1, "--min-lr-ratio must be in [0, 1], got ", o.min_lr_ratio);
  ZT_CHECK(o.weight_decay >= 0, "--weight-decay must be >= 0, got ", o.weight_decay);
  ZT_CHECK(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1, "Adam betas must be in [0, 1), got ", o.beta1,
           " and ", o.beta2);
  ZT_CHECK(o.log_every > 0, "--log-every must be positive, got ", o.log_every);
  ZT_CHECK(o.threads >= 0, "--threads must be >= 0, got ", o.threads);
  ZT_CHECK(o.save_every >= 0, "--save-every must be >= 0, got ", o.save_every);
  ZT_CHECK(o.save_every == 0 || !o.save_dir.empty(), "--save-every needs --save DIR");
  const Device device = rank_device(o);
  ZT_CHECK(!device.is_cuda() || cuda_is_available(), "--device ", o.device, ": ",
           cuda_is_built() ? "no CUDA device is visible here" : "this build of zt has no CUDA");
  ZT_CHECK(!device.is_cuda() || device.index < cuda_device_count(), "--device ", o.device, " on local rank ",
           comm::launched_local_rank(), ": there is no ", device.name(), " (", cuda_device_count(),
           " CUDA devices visible); launch at most one rank per GPU of the host");
  ZT_CHECK(o.precision == "auto" || o.precision == "fp32" || o.precision == "bf16", "--precision must be auto, fp32 or bf16, got \"",
           o.precision, "\"");
  ZT_CHECK(o.zero_stage >= 0 && o.zero_stage <= 3, "--zero-stage must be 0, 1, 2 or 3, got ", o.zero_stage);
  ZT_CHECK(o.vocab_multiple >= 1, "--vocab-multiple must be >= 1, got ", o.vocab_multiple);
}

Device rank_device(const TrainOptions& o) { return device_for_local_rank(o.device, comm::launched_local_rank()); }

std::string resolved_precision(const TrainOptions& o) {
  if (o.precision != "auto") return o.precision;
  return device_from_name(o.device).is_cuda() ? "bf16" : "fp32";
}

namespace {

// --activation-checkpointing and --cpu-checkpointing on top of what the config says.
Config with_checkpointing_flags(Config c, const TrainOptions& o) {
  if (o.activation_checkpointing || o.cpu_checkpointing) c.activation_checkpointing.enabled = true;
  if (o.cpu_checkpointing) c.activation_checkpointing.cpu_checkpointing = true;
  return c;
}

}  // namespace

Config engine_config(const TrainOptions& o, int world_size) {
  if (!o.deepspeed_config.empty()) return with_checkpointing_flags(Config::from_file(o.deepspeed_config, world_size), o);
  nlohmann::json j = {
      {"train_micro_batch_size_per_gpu", o.batch_size},
      {"gradient_accumulation_steps", 1},
      {"gradient_clipping", o.grad_clip > 0 ? o.grad_clip : 0.0},
      {"optimizer",
       {{"type", "AdamW"},
        {"params", {{"lr", o.lr}, {"betas", {o.beta1, o.beta2}}, {"eps", 1e-8}, {"weight_decay", o.weight_decay}}}}},
      {"scheduler",
       {{"type", "WarmupCosineLR"},
        {"params",
         {{"total_num_steps", std::max<int64_t>(o.steps, o.warmup_steps + 2)},
          {"warmup_num_steps", o.warmup_steps},
          {"warmup_min_ratio", 0.0},
          {"cos_min_ratio", o.min_lr_ratio},
          {"warmup_type", "linear"}}}}},
      {"zero_optimization", {{"stage", o.zero_stage}}},
      {"bf16", {{"enabled", resolved_precision(o) == "bf16"}}},
  };
  return with_checkpointing_flags(Config::from_json(j, world_size, "zt train options"), o);
}

std::shared_ptr<models::CausalLM> make_model(const TrainOptions& o) {
  if (models::is_builtin(o.model)) {
    models::TransformerConfig config = models::builtin_config(o.model);
    config.vocab_size = (config.vocab_size + o.vocab_multiple - 1) / o.vocab_multiple * o.vocab_multiple;
    auto model = models::build_causal_lm(config);
    model->init_weights(o.seed);
    return model;
  }
  if (std::filesystem::is_directory(o.model)) return models::load_pretrained(o.model);
  return models::build_causal_lm(models::builtin_config(o.model));  // names the known models
}

int64_t data_vocab_size(const TrainOptions& o, const models::CausalLM& model) {
  if (models::is_builtin(o.model)) return models::builtin_config(o.model).vocab_size;
  return model.config().vocab_size;
}

namespace {

std::string mib(size_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", double(bytes) / (1024.0 * 1024.0));
  return buf;
}

std::string progress_line(const TrainOptions& o, const StepRecord& r, const TrainResult& result, double tokens_per_s,
                          const zero::MemoryReport& memory) {
  std::string floor;
  if (result.entropy_floor >= 0)
    floor = str(" | floor ", result.entropy_floor, " (", 100.0 * (r.loss / result.entropy_floor - 1.0), "% above)");
  char line[640];
  std::snprintf(line, sizeof line,
                "step %5lld/%lld | loss %.4f%s | norm %.3f | lr %.2e | %.0f tok/s | %.1f ms/step | stage %d x %d | "
                "states %s/rank | %s %s%s",
                (long long)r.step, (long long)o.steps, r.loss, floor.c_str(), r.grad_norm, r.lr, tokens_per_s, r.ms,
                result.stage, result.world_size, mib(memory.model_states()).c_str(), result.device == "cpu" ? "rss" : "gpu peak",
                mib(result.device == "cpu" ? process_resident_bytes() : device_bytes_peak()).c_str(),
                r.applied ? "" : " | skipped (fp16 overflow)");
  return line;
}

}  // namespace

TrainResult train(const TrainOptions& o, const ProgressFn& progress) {
  validate(o);
  if (o.threads > 0) omp_set_num_threads(o.threads);
  auto group = comm::init_process_group();
  const int rank = group->rank(), world = group->size();
  const ProgressFn say = [&](const std::string& line) {
    if (rank == 0) progress(line);
  };
  const Config config = engine_config(o, world);
  TrainResult result;
  result.stage = config.zero.stage;
  result.world_size = world;

  auto model = make_model(o);
  const auto& model_config = model->config();
  ZT_CHECK(o.seq_len <= model_config.max_position_embeddings, "--seq-len ", o.seq_len, " exceeds the model's ",
           model_config.max_position_embeddings, " positions");
  const Device device = rank_device(o);
  if (device.is_cuda()) {
    // The model was built and initialized on the host in f32 (4 bytes a parameter: 28 GB for 7B);
    // each host copy goes as its parameter moves, and the freed pages go back to the system before
    // the engine allocates its own host buffers (the optimizer offload's 12-14 bytes a parameter).
    for (const auto& [name, p] : model->named_parameters()) p->data = p->data.to(device);
    release_free_host_memory();
  }
  result.device = device.name();
  result.precision = config.bf16 ? "bf16" : (config.fp16.enabled ? "fp16" : "fp32");
  std::shared_ptr<data::Dataset> dataset = make_dataset(o, data_vocab_size(o, *model), rank, world);
  ZT_CHECK(dataset->vocab_size() <= model_config.vocab_size, "the data's vocabulary (", dataset->vocab_size(),
           " tokens) is larger than the model's (", model_config.vocab_size, ")");
  if (auto* corpus = dynamic_cast<const data::MarkovCorpus*>(&dataset->source()))
    result.entropy_floor = corpus->entropy_rate();

  auto engine = initialize(model, std::make_shared<nn::CrossEntropyLoss>(/*in_place_grad=*/true), config, dataset, group).engine;
  result.parameters = engine->layout().parameter_count();
  result.model_description = str(model->type_name(), " \"", o.model, "\" with ", result.parameters, " parameters");
  result.data_description = dataset->describe();
  say(str("model: ", result.model_description));
  say(str("data: ", result.data_description));
  const int64_t tokens_per_step = config.train_batch_size * o.seq_len;
  result.train_batch_size = config.train_batch_size;
  result.tokens_per_step = tokens_per_step;
  say(str("ZeRO stage ", config.zero.stage, " on ", world, " rank(s) (", group->backend_name(), ") on ", result.device, ", ",
          config.bf16 ? "bf16" : (config.fp16.enabled ? "fp16" : "f32"), ", batch ", config.train_batch_size, " = ",
          config.train_micro_batch_size_per_gpu, " x ", config.gradient_accumulation_steps, " x ", world, " of ", o.seq_len,
          " tokens, ", o.steps, " steps, ", omp_get_max_threads(), " threads per rank"));
  say(engine->placement());

  int64_t first_step = 0;
  if (!o.resume_dir.empty()) {
    engine->load_checkpoint(o.resume_dir);
    first_step = engine->global_steps();
    say(str("resumed from ", o.resume_dir, " at step ", first_step, " (data position ", dataset->position(), ")"));
    ZT_CHECK(first_step < o.steps, "the checkpoint in ", o.resume_dir, " is at step ", first_step,
             ", already at --steps ", o.steps, "; ask for more steps to continue");
  }
  const auto save = [&](int64_t step) {
    engine->save_checkpoint(o.save_dir, "global_step" + std::to_string(step), {{"model", o.model}, {"data", o.data}});
    say(str("saved checkpoint ", o.save_dir, "/global_step", step));
  };

  double timed_seconds = 0;
  int64_t timed_steps = 0;
  std::vector<double> timed_ms;
  if (device.is_cuda()) reset_device_bytes_peak();
  for (int64_t step = first_step; step < o.steps; ++step) {
    Timer timer;
    const double lr = engine->lr();
    const int64_t skipped_before = engine->skipped_steps();
    const double loss = engine->train_batch(*dataset, o.seq_len);
    ZT_CHECK(std::isfinite(loss), "the loss became ", loss, " at step ", step + 1,
             " (try a lower learning rate or gradient clipping)");
    // The norm is read after the update was queued, and reading it waits for the backward: it
    // belongs inside the step's time.
    const double grad_norm = engine->last_grad_norm();
    const double ms = timer.elapsed_ms();
    if (step == first_step) op_profile_reset();  // the first step's warm-up stays out of the op profile
    if (step > first_step) {
      timed_seconds += ms / 1e3;
      ++timed_steps;
      timed_ms.push_back(ms);
    }
    result.steps.push_back({step + 1, loss, grad_norm, lr, ms, engine->skipped_steps() == skipped_before});
    if ((step + 1) % o.log_every == 0 || step == 0 || step + 1 == o.steps) {
      const double tok_s = double(tokens_per_step) * (timed_steps ? double(timed_steps) / timed_seconds : 1e3 / ms);
      say(progress_line(o, result.steps.back(), result, tok_s, engine->memory_report()));
    }
    if (!o.save_dir.empty() && ((o.save_every > 0 && (step + 1) % o.save_every == 0) || step + 1 == o.steps)) save(step + 1);
  }
  if (op_profiling()) say(str(op_profile_table(), "  (", timed_steps, " timed steps, ",
                             timed_seconds * 1e3 / double(std::max<int64_t>(1, timed_steps)), " ms a step)"));
  result.memory = engine->memory_report();
  if (device.is_cuda()) {
    // The busiest GPU's peak: ranks hold different partitions (and padding), and a run fits
    // only if its largest rank fits.
    Tensor peak = Tensor::zeros({1}, DType::f64);
    peak.data<double>()[0] = double(device_bytes_peak());
    if (world > 1) group->all_reduce(peak, comm::ReduceOp::max).wait();
    result.device_peak_bytes = size_t(peak.data<double>()[0]);
  }
  if (!timed_ms.empty()) {
    std::nth_element(timed_ms.begin(), timed_ms.begin() + long(timed_ms.size() / 2), timed_ms.end());
    result.median_step_ms = timed_ms[timed_ms.size() / 2];
  }
  result.tokens_per_s = timed_steps ? double(tokens_per_step) * double(timed_steps) / timed_seconds : 0;
  const size_t tail = std::min<size_t>(10, result.steps.size());
  for (size_t i = result.steps.size() - tail; i < result.steps.size(); ++i) result.final_loss += result.steps[i].loss;
  result.final_loss /= double(tail);
  return result;
}

}  // namespace zt::engine
