#include "zt/engine/trainer.hpp"

#include <omp.h>

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "zt/core/memory_stats.hpp"
#include "zt/core/timer.hpp"
#include "zt/data/markov_corpus.hpp"
#include "zt/data/token_dataset.hpp"
#include "zt/models/builtin.hpp"
#include "zt/nn/loss.hpp"
#include "zt/optim/adamw.hpp"
#include "zt/optim/clip.hpp"
#include "zt/zero/flat_parameters.hpp"

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
}

double scheduled_lr(const TrainOptions& o, int64_t step) {
  if (step < o.warmup_steps) return o.lr * double(step + 1) / double(o.warmup_steps);
  const int64_t decay_steps = o.steps - o.warmup_steps;
  if (decay_steps <= 1) return o.lr;
  const double progress = double(step - o.warmup_steps) / double(decay_steps - 1);
  const double cosine = 0.5 * (1.0 + std::cos(M_PI * progress));
  return o.lr * (o.min_lr_ratio + (1.0 - o.min_lr_ratio) * cosine);
}

std::shared_ptr<models::CausalLM> make_model(const TrainOptions& o) {
  if (models::is_builtin(o.model)) {
    auto model = models::build_causal_lm(models::builtin_config(o.model));
    model->init_weights(o.seed);
    return model;
  }
  if (std::filesystem::is_directory(o.model)) return models::load_pretrained(o.model);
  return models::build_causal_lm(models::builtin_config(o.model));  // names the known models
}

std::unique_ptr<data::Dataset> make_dataset(const TrainOptions& o, int64_t vocab_size, int rank) {
  if (o.data == "synthetic") {
    data::MarkovCorpusOptions corpus;
    corpus.vocab_size = vocab_size;
    corpus.stream_seed = o.seed * 1000003ull + uint64_t(rank);
    return std::make_unique<data::MarkovCorpus>(corpus);
  }
  return std::make_unique<data::TokenDataset>(o.data, vocab_size, o.seed, rank, 1);
}

namespace {

std::string format_bytes(size_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", double(bytes) / (1024.0 * 1024.0));
  return buf;
}

}  // namespace

TrainResult train(const TrainOptions& o, const ProgressFn& progress) {
  validate(o);
  if (o.threads > 0) omp_set_num_threads(o.threads);
  TrainResult result;
  auto model = make_model(o);
  const auto& config = model->config();
  ZT_CHECK(o.seq_len <= config.max_position_embeddings, "--seq-len ", o.seq_len, " exceeds the model's ",
           config.max_position_embeddings, " positions");
  auto dataset = make_dataset(o, config.vocab_size, 0);
  ZT_CHECK(dataset->vocab_size() <= config.vocab_size, "the data's vocabulary (", dataset->vocab_size(),
           " tokens) is larger than the model's (", config.vocab_size, ")");
  if (auto* corpus = dynamic_cast<data::MarkovCorpus*>(dataset.get())) result.entropy_floor = corpus->entropy_rate();

  zero::FlatParameters flat(*model, DType::f32, Device::cpu());
  result.parameters = flat.parameter_count();
  result.model_description = str(model->type_name(), " \"", o.model, "\" with ", result.parameters, " parameters");
  result.data_description = dataset->describe();
  progress(str("model: ", result.model_description));
  progress(str("data: ", result.data_description));
  progress(str("batch ", o.batch_size, " x ", o.seq_len, " tokens, ", o.steps, " steps, lr ", o.lr, ", ",
               omp_get_max_threads(), " threads"));

  optim::AdamW optimizer({o.beta1, o.beta2, 1e-8, o.weight_decay, true});
  nn::CrossEntropyLoss loss_fn(/*in_place_grad=*/true);
  const int64_t tokens_per_step = o.batch_size * o.seq_len;
  double timed_seconds = 0;
  int64_t timed_steps = 0;
  for (int64_t step = 0; step < o.steps; ++step) {
    Timer timer;
    const data::Batch batch = dataset->next_batch(o.batch_size, o.seq_len);
    flat.grad().zero_();
    const Tensor logits = model->forward(batch.inputs);
    const double loss = loss_fn.forward(logits, batch.targets);
    ZT_CHECK(std::isfinite(loss), "the loss became ", loss, " at step ", step + 1,
             " (try a lower --lr or a smaller --grad-clip)");
    model->backward(loss_fn.backward());
    const double norm = std::sqrt(optim::sum_of_squares({flat.grad()}));
    const double lr = scheduled_lr(o, step);
    optimizer.step({{0, flat.data(), flat.grad()}}, lr, optim::clip_coefficient(norm, o.grad_clip));
    const double ms = timer.elapsed_ms();
    if (step > 0) {
      timed_seconds += ms / 1e3;
      ++timed_steps;
    }
    result.steps.push_back({step + 1, loss, norm, lr, ms});
    if ((step + 1) % o.log_every == 0 || step == 0 || step + 1 == o.steps) {
      const double tok_s = timed_steps ? double(tokens_per_step) * double(timed_steps) / timed_seconds
                                       : double(tokens_per_step) / (ms / 1e3);
      std::string floor;
      if (result.entropy_floor >= 0)
        floor = str(" | floor ", result.entropy_floor, " (", 100.0 * (loss / result.entropy_floor - 1.0), "% above)");
      char line[512];
      std::snprintf(line, sizeof line, "step %5lld/%lld | loss %.4f%s | norm %.3f | lr %.2e | %.0f tok/s | %.1f ms/step | mem %s",
                    (long long)(step + 1), (long long)o.steps, loss, floor.c_str(), norm, lr, tok_s, ms,
                    format_bytes(process_resident_bytes()).c_str());
      progress(line);
    }
  }
  result.tokens_per_s = timed_steps ? double(tokens_per_step) * double(timed_steps) / timed_seconds : 0;
  const size_t tail = std::min<size_t>(10, result.steps.size());
  for (size_t i = result.steps.size() - tail; i < result.steps.size(); ++i) result.final_loss += result.steps[i].loss;
  result.final_loss /= double(tail);
  return result;
}

}  // namespace zt::engine
