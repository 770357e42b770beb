#include "zt/engine/engine.hpp"

#include <cmath>

#include "engine_parts.hpp"
#include "optimizer_offload.hpp"
#include "queued_clip.hpp"
#include "step_graph.hpp"
#include "zt/engine/activation_checkpointing.hpp"
#include "zt/core/env.hpp"
#include "zt/core/log.hpp"
#include "zt/core/op_profile.hpp"
#include "zt/core/storage.hpp"
#include "zt/kernels/ops.hpp"
#include "zt/optim/adamw.hpp"
#include "zt/optim/clip.hpp"
#include "zt/optim/lamb.hpp"
#include "zt/zero/param_store.hpp"

namespace zt::engine {

namespace {

DType dtype_from_config_name(const std::string& name, const char* key) {
  if (name == "fp32" || name == "float32") return DType::f32;
  if (name == "bf16" || name == "bfloat16") return DType::bf16;
  if (name == "fp16" || name == "float16") return DType::f16;
  ZT_THROW(key, " = \"", name, "\" is not one of fp32, bf16, fp16");
}

zero::ZeroOptions zero_options(const Config& c, Device device) {
  zero::ZeroOptions o;
  o.stage = c.zero.stage;
  o.storage_dtype = c.bf16 ? DType::bf16 : (c.fp16.enabled ? DType::f16 : DType::f32);
  o.comm_dtype = c.communication_data_type.empty()
                     ? o.storage_dtype
                     : dtype_from_config_name(c.communication_data_type, "communication_data_type");
  o.device = device;
  o.reduce_bucket_size = c.zero.reduce_bucket_size;
  o.overlap_comm = c.zero.overlap_comm;
  o.prefetch_bucket_size = c.zero.stage3_prefetch_bucket_size;
  o.param_persistence_threshold = c.zero.stage3_param_persistence_threshold;
  o.max_live_parameters = c.zero.stage3_max_live_parameters;
  const OffloadConfig& p = c.zero.offload_param;
  if (c.zero.stage == 3 && p.device != "none") {
    o.offload_param.place = p.device == "nvme" ? zero::ParamPlace::nvme : zero::ParamPlace::host;
    o.offload_param.pin_memory = p.pin_memory;
    o.offload_param.buffer_count = p.buffer_count;
    o.offload_param.buffer_size = p.buffer_size;
    o.offload_param.max_in_cpu = p.max_in_cpu;
    o.offload_param.nvme_path = p.nvme_path;
    o.offload_param.aio = aio_options(c.aio);
  }
  return o;
}

}  // namespace

Engine::Engine(std::shared_ptr<nn::Module> model, std::shared_ptr<nn::Loss> loss, const Config& config,
               std::shared_ptr<comm::ProcessGroup> group)
    : model_(std::move(model)), loss_(std::move(loss)), config_(config), group_(std::move(group)) {
  ZT_CHECK(model_ && loss_, "initialize: a model and a loss are required");
  ZT_CHECK(group_ != nullptr, "initialize: no process group");
  // Before the hooks go in: a checkpointed block's wrapper is part of the tree they are installed on.
  apply_activation_checkpointing(*model_, config_.activation_checkpointing);
  const auto params = model_->named_parameters();
  ZT_CHECK(!params.empty(), "initialize: the model has no parameters");
  const Device device = params.front().second->data.device();
  // The config accepts DeepSpeed's offload sections; the engine implements optimizer offload to the CPU, whole,
  // and parameter offload (stage 3) to the CPU or NVMe.
  ZT_CHECK(config_.zero.offload_optimizer.device == "none" || config_.zero.offload_optimizer.ratio == 1.0,
           "zero_optimization.offload_optimizer.ratio = ", config_.zero.offload_optimizer.ratio,
           ": a partial optimizer offload is not supported by this version of zt; use ratio 1 (all of it)");
  options_ = zero_options(config_, device);
  compute_dtype_ = device.is_cpu() ? DType::f32 : options_.storage_dtype;
  const int world = group_->size(), rank = group_->rank();
  layout_ = std::make_unique<zero::FlatLayout>(*model_, world, options_.alignment, options_.reduce_bucket_size);

  const bool shard_params = options_.stage == 3;
  const bool offload_params = shard_params && options_.offload_param.place != zero::ParamPlace::device;

  // The starting weights, in f32, the same on every rank (rank 0's); assembled on the host when
  // the parameters are to live there.
  Tensor initial = Tensor::zeros({layout_->total()}, DType::f32, offload_params ? Device::cpu() : device);
  for (const auto& slot : layout_->slots()) {
    ZT_CHECK(slot.param->data.defined(), "initialize: parameter ", slot.name, " has no values");
    ops::cast(initial.view(size_t(slot.offset), slot.param->shape), slot.param->data);
  }
  if (world > 1) group_->broadcast(initial, 0).wait();

  const zero::Range mine = layout_->partition(rank);
  const Tensor my_initial = options_.stage == 0 ? initial : initial.view(size_t(mine.begin), {mine.size()});
  if (offload_params) {
    // A store that fails on one rank (a bad nvme_path) fails on all, before any collective.
    std::string error;
    try {
      param_store_ = zero::make_param_store(options_, mine.size(), rank);
      param_store_->write(my_initial);
    } catch (const std::exception& e) {
      error = e.what();
    }
    Tensor failed = Tensor::from_ints({1}, {error.empty() ? world : rank});
    if (world > 1) group_->all_reduce(failed, comm::ReduceOp::min).wait();
    if (!error.empty()) ZT_THROW(error);
    ZT_CHECK(failed.data<int32_t>()[0] == world, "offload_param: the parameter store failed on rank ",
             failed.data<int32_t>()[0]);
  } else {
    param_storage_ = Tensor::empty({shard_params ? mine.size() : layout_->total()}, options_.storage_dtype, device);
    ops::cast(param_storage_, shard_params ? my_initial : initial);
  }
  auto parts = make_training_parts(config_);
  optimizer_ = std::move(parts.optimizer);
  learning_rate_ = std::move(parts.learning_rate);
  loss_scale_ = std::move(parts.loss_scale);
  if (options_.stage >= 1 && config_.zero.offload_optimizer.device != "none") {
    offload_ = make_optimizer_offload(config_, options_, mine.size(), rank, my_initial, *optimizer_);
  } else if (options_.storage_dtype == DType::f32 && !offload_params) {
    master_ = options_.stage == 0 || shard_params ? param_storage_ : param_storage_.view(size_t(mine.begin), {mine.size()});
  } else {
    master_ = Tensor::empty({my_initial.numel()}, DType::f32, device);
    master_.copy_from(my_initial);
  }
  initial = Tensor();  // freed before the gradients are allocated: the peak while initializing is lower

  reducer_ = std::make_unique<zero::GradReducer>(*layout_, *group_, options_);
  if (offload_) reducer_->set_reduced_hook([this](zero::Range r) { offload_->gradient_ready(reducer_->gradients(), r); });
  coordinator_ = offload_params ? std::make_unique<zero::ParamCoordinator>(*layout_, *group_, options_, compute_dtype_,
                                                                           param_store_)
                               : std::make_unique<zero::ParamCoordinator>(*layout_, *group_, options_, compute_dtype_,
                                                                           param_storage_);
  install_segments();
  install_hooks();
  if (const std::string why = step_graph_refusal(); why.empty()) step_graph_ = std::make_unique<StepGraph>();
  else if (device.is_cuda()) log_debug("train_batch runs its forwards and backwards without a CUDA graph: ", why);
}

std::string Engine::step_graph_refusal() const {
  // The graph replays the host's decisions of its capture: everything that changes from step to
  // step inside a forward or backward must live in device memory.
  if (!options_.device.is_cuda()) return "not on a GPU";
  if (!env_bool("ZT_CUDA_GRAPHS", true)) return "ZT_CUDA_GRAPHS=0";
  if (group_->size() > 1) return "more than one rank (the gradients' reductions are waited for on the host)";
  if (options_.stage > 1) return str("ZeRO stage ", options_.stage, " (buckets and gathers managed on the host)");
  if (offload_ || param_store_) return "offload (copies between host and device inside the step)";
  if (loss_scale_->dynamic()) return "fp16's dynamic loss scale (the gradient's factor changes between steps)";
  if (!dynamic_cast<const nn::CrossEntropyLoss*>(loss_.get())) return "a loss other than the cross-entropy";
  if (config_.activation_checkpointing.enabled) return "activation checkpointing";
  if (op_profiling()) return "the op profile (ZT_PROFILE_OPS times each op with events)";
  return "";
}

int64_t Engine::step_graph_replays() const { return step_graph_ ? step_graph_->replays() : 0; }

void Engine::install_segments() {
  const zero::Range owned = options_.stage == 0 ? zero::Range{0, layout_->total()} : layout_->partition(group_->rank());
  for (size_t s = 0; s < layout_->slots().size(); ++s) {
    const auto& slot = layout_->slots()[s];
    const zero::Range piece = zero::intersect({slot.offset, slot.offset + slot.numel}, owned);
    if (piece.size() > 0) segments_.push_back({piece.begin - owned.begin, piece.size(), int64_t(s)});
  }
  auto* lamb = dynamic_cast<optim::Lamb*>(optimizer_.get());
  if (!lamb || options_.stage == 0 || (group_->size() == 1 && !offload_)) return;
  // A parameter split between ranks (or between offload tiles) gets one trust ratio: its norms are
  // summed over the pieces.
  const size_t slots = layout_->slots().size();
  lamb->set_norm_reducer([this, slots](std::vector<optim::SegmentNorms>& keyed) {
    Tensor sums = Tensor::zeros({int64_t(2 * slots)}, DType::f64);
    double* p = sums.data<double>();
    for (const auto& k : keyed) {
      p[2 * k.key] += k.param_sq;
      p[2 * k.key + 1] += k.update_sq;
    }
    if (group_->size() > 1) group_->all_reduce(sums).wait();
    for (auto& k : keyed) {
      k.param_sq = p[2 * k.key];
      k.update_sq = p[2 * k.key + 1];
    }
  });
}

Engine::~Engine() {
  if (model_) model_->clear_hooks_recursive();
}

void Engine::install_hooks() {
  hooks_ = std::make_shared<nn::ModuleHooks>();
  hooks_->before_forward = [this](nn::Module& m) { coordinator_->acquire(m); };
  hooks_->after_forward = [this](nn::Module& m) { coordinator_->release(m); };
  hooks_->before_backward = [this](nn::Module& m) {
    coordinator_->acquire(m);
    for (const auto& [name, p] : m.own_parameters())
      if (p->requires_grad) p->grad = reducer_->grad_destination(layout_->slot_of(p.get()), compute_dtype_);
  };
  hooks_->after_backward = [this](nn::Module& m) { coordinator_->release(m); };
  hooks_->grad_ready = [this](nn::Parameter& p) {
    reducer_->grad_ready(layout_->slot_of(&p));
    p.grad = Tensor();
  };
  model_->add_hooks_recursive(hooks_);
}

bool Engine::is_gradient_accumulation_boundary() const {
  return (micro_steps_ + 1) % config_.gradient_accumulation_steps == 0;
}

double Engine::lr() const { return learning_rate_->current(); }
double Engine::loss_scale() const { return loss_scale_->scale(); }

double Engine::forward(const Tensor& inputs, const Tensor& targets) {
  // Outside train_batch the loss and the modules may take buffers of other shapes, which a
  // captured graph would go on writing: it is captured again, after warming up, by a later one.
  if (step_graph_) step_graph_->reset();
  return forward(inputs, targets, false);
}

double Engine::forward(const Tensor& inputs, const Tensor& targets, bool queued) {
  ZT_CHECK(!forward_pending_, "Engine::forward called twice without a backward in between");
  const Tensor out = model_->forward(inputs.to(options_.device));
  const double grad_scale = loss_scale_->scale() / double(config_.gradient_accumulation_steps);
  // Targets stay where they are: a loss moves them itself (the cross-entropy counts them on the host first).
  double loss = 0;
  if (queued) loss_->forward_queued(out, targets, grad_scale);
  else loss = loss_->forward(out, targets, grad_scale);
  forward_pending_ = true;
  return loss;
}

void Engine::backward() {
  ZT_CHECK(forward_pending_, "Engine::backward without a forward");
  if (micro_steps_ % config_.gradient_accumulation_steps == 0) reducer_->zero();
  reducer_->begin_backward(is_gradient_accumulation_boundary());
  model_->backward(loss_->backward());
  reducer_->finish_backward();
  coordinator_->end_step();
  forward_pending_ = false;
  ++micro_steps_;
}

Tensor Engine::master_gradients_f32() {
  const Tensor g = reducer_->gradients();
  if (g.dtype() == DType::f32) return g;
  Tensor f = Tensor::empty(g.shape(), DType::f32, g.device());
  ops::cast(f, g);
  return f;
}

std::string Engine::placement() const {
  const std::string device = options_.device.is_cpu() ? "cpu" : options_.device.name();
  const std::string parameters = param_store_ ? param_store_->describe() + ", fetched per module" : device;
  return str("parameters: ", parameters, ", gradients: ", device, ", master weights and optimizer states: ",
             offload_ ? offload_placement(*offload_, options_.device) : device,
             ", activations: ", describe_activations(*model_, options_.device),
             step_graph_ ? ", " + step_graph_->describe() : std::string());
}

bool Engine::step() {
  if (micro_steps_ == 0 || micro_steps_ % config_.gradient_accumulation_steps != 0) return false;
  ZT_CHECK(!forward_pending_, "Engine::step between a forward and its backward");
  const Tensor grads = reducer_->gradients();
  if (clips_on_device()) return step_clipped_on_device(grads);
  const bool sharded = options_.stage >= 1;
  const int world = group_->size();

  // One reduction carries both the overflow flag and the sum of squares.
  Tensor stats = Tensor::zeros({2}, DType::f64);
  stats.data<double>()[0] = loss_scale_->dynamic() && !ops::all_finite(grads) ? 1.0 : 0.0;
  stats.data<double>()[1] = ops::sum_squares(grads);
  if (sharded && world > 1) group_->all_reduce(stats, comm::ReduceOp::sum).wait();
  // The losses train_batch's forwards queued: the stream has passed them, so reading them here,
  // before the update is queued, costs no wait (after it, the host would idle the GPU while
  // it queues the next forward).
  for (double loss : loss_->take_queued()) queued_losses_.push_back(loss);
  const bool overflow = stats.data<double>()[0] > 0 || !std::isfinite(stats.data<double>()[1]);
  ++global_steps_;
  if (overflow && loss_scale_->dynamic()) {
    ++skipped_steps_;
    loss_scale_->update(true, global_steps_);
    reducer_->zero_ahead();
    return false;
  }
  ZT_CHECK(!overflow, "gradients overflowed at step ", global_steps_, " (norm is not finite) without fp16 loss scaling");
  // The reductions summed over ranks, and the loss was multiplied by the loss scale.
  const double denominator = double(world) * loss_scale_->scale();
  last_grad_norm_ = std::sqrt(stats.data<double>()[1]) / denominator;
  const double coefficient = optim::clip_coefficient(last_grad_norm_, config_.gradient_clipping);
  if (const auto betas = learning_rate_->betas()) optimizer_->set_betas(betas->first, betas->second);
  if (offload_) {
    // With offload_param the store takes the update from the master weights, not from the tiles.
    offload_->step(*optimizer_, segments_, learning_rate_->current(), coefficient / denominator,
                   param_store_ ? Tensor() : my_parameters());
    if (param_store_) cast_master_into_parameters();
  } else if (steps_mixed_on_device()) {
    optimizer_->step({mixed_step_target(grads)}, learning_rate_->current(), coefficient / denominator);
  } else {
    optimizer_->step({{0, master_, master_gradients_f32(), segments_}}, learning_rate_->current(), coefficient / denominator);
    cast_master_into_parameters();
  }
  finish_update();
  return true;
}

bool Engine::step_clipped_on_device(const Tensor& grads) {
  // A norm queued by the previous step and not read since: a non-finite one is reported now.
  if (queued_clip_ && queued_clip_->pending()) last_grad_norm();
  ++global_steps_;
  // The gradients hold the sum over the ranks (stage 0) of the loss times the loss scale.
  const double denominator = double(group_->size()) * loss_scale_->scale();
  if (!queued_clip_) queued_clip_ = std::make_unique<QueuedClip>(options_.device);
  optim::StepTarget target = mixed_step_target(grads);
  target.queued_scale = queued_clip_->queue(grads, config_.gradient_clipping, denominator, global_steps_);
  if (const auto betas = learning_rate_->betas()) optimizer_->set_betas(betas->first, betas->second);
  optimizer_->step({target}, learning_rate_->current(), 1.0);
  finish_update();
  // The forwards' losses, read once the update is queued: a CUDA graph's copies are marked at
  // the graph's end, and waiting for them before would leave the GPU idle while the host queues.
  for (double loss : loss_->take_queued()) queued_losses_.push_back(loss);
  return true;
}

void Engine::finish_update() {
  publish_parameters();
  learning_rate_->step();
  loss_scale_->update(false, global_steps_);
  reducer_->zero_ahead();  // the next window's gradients are written over the buffer
}

double Engine::last_grad_norm() {
  if (queued_clip_ && queued_clip_->pending()) last_grad_norm_ = queued_clip_->take_norm();
  return last_grad_norm_;
}

bool Engine::clips_on_device() const {
  // The dynamic loss scale must see an overflow on the host before it decides on the update, and
  // the ranks of a sharded run sum their squares through the host; Adam's L2 form needs the
  // factor on the host. ZT_GRAD_NORM_ON_HOST=1 keeps the host's round trip (for comparisons).
  return steps_mixed_on_device() && !offload_ && !loss_scale_->dynamic() && optimizer_->takes_queued_scale() &&
         (options_.stage == 0 || group_->size() == 1) && !env_bool("ZT_GRAD_NORM_ON_HOST", false);
}

optim::StepTarget Engine::mixed_step_target(const Tensor& grads) {
  // AdamW on the GPU reads the bf16/f16 gradients as they are and writes the rounded parameters
  // in the same pass: no f32 copy of the gradients, no separate cast of the master weights.
  optim::StepTarget target{0, master_, grads, segments_};
  target.param_out = options_.stage == 0 ? param_storage_ : my_parameters();
  return target;
}

bool Engine::steps_mixed_on_device() const {
  return options_.device.is_cuda() && options_.storage_dtype != DType::f32 && !param_store_ &&
         dynamic_cast<const optim::AdamW*>(optimizer_.get()) != nullptr;
}

Tensor Engine::my_parameters() const {
  const zero::Range mine = layout_->partition(group_->rank());
  return options_.stage == 3 ? param_storage_ : param_storage_.view(size_t(mine.begin), {mine.size()});
}

void Engine::cast_master_into_parameters() {
  if (param_store_) {
    // offload_param: the master weights rounded straight into the host or NVMe partition (with
    // offload_optimizer both are on the host: nothing goes up to the device).
    coordinator_->write_partition(offload_ ? offload_->master_copy() : master_);
  } else if (offload_) {
    offload_->upload(my_parameters());
  } else if (options_.storage_dtype != DType::f32) {  // in f32 the master is the parameter storage
    ops::cast(options_.stage == 0 ? param_storage_ : my_parameters(), master_);
  }
}

void Engine::publish_parameters() {
  if ((options_.stage == 1 || options_.stage == 2) && group_->size() > 1)
    group_->all_gather(param_storage_, my_parameters()).wait();
  coordinator_->refresh();
}

void Engine::run_micro_steps(const std::vector<std::pair<Tensor, Tensor>>& batches) {
  for (const auto& [inputs, targets] : batches) {
    forward(inputs, targets, /*queued=*/true);
    backward();
  }
}

double Engine::train_batch(data::Dataset& data, int64_t seq_len) {
  const int64_t gas = config_.gradient_accumulation_steps;
  // The losses are read by the step, which waits for the gradients anyway: the backward is queued
  // while the forward still runs.
  queued_losses_.clear();
  std::vector<data::Batch> batches;
  for (int64_t i = 0; i < gas; ++i) batches.push_back(data.next_batch(config_.train_micro_batch_size_per_gpu, seq_len));
  if (step_graph_ && !op_profiling()) {
    ZT_CHECK(micro_steps_ % gas == 0 && !forward_pending_, "train_batch inside an accumulation window: ",
             micro_steps_ % gas, " of its ", gas, " micro-batches were run by forward and backward");
    const auto& on_device = step_graph_->stage(batches, options_.device);
    // Outside the graph, so that a replay starts the window as the captured run did (the
    // backward's own zero() is then nothing).
    reducer_->zero();
    const StepGraph::Ran ran = step_graph_->run([&] { run_micro_steps(on_device); });
    if (ran == StepGraph::Ran::replayed) {  // the host side of a replay
      micro_steps_ += gas;
      reducer_->backward_replayed();
    }
  } else {
    if (step_graph_) step_graph_->reset();  // the op profile's eager steps: captured again after it
    std::vector<std::pair<Tensor, Tensor>> on_host;
    for (const data::Batch& b : batches) on_host.emplace_back(b.inputs, b.targets);
    run_micro_steps(on_host);
  }
  step();
  double total = 0;
  for (double loss : queued_losses_) total += loss;
  queued_losses_.clear();
  Tensor mean = Tensor::from_floats({1}, {0.0f}, DType::f64);
  mean.data<double>()[0] = total / double(gas);
  if (group_->size() > 1) group_->all_reduce(mean, comm::ReduceOp::avg).wait();
  return mean.data<double>()[0];
}

zero::MemoryReport Engine::memory_report() const {
  zero::MemoryReport r;
  r.parameters = param_storage_.defined() ? param_storage_.nbytes() : 0;
  if (param_store_) {
    r.parameters = param_store_->memory_bytes();
    r.parameters_place = param_store_->place();
    r.parameters_in_file = param_store_->file_bytes();
    r.parameter_buffers = coordinator_->fetch_buffer_bytes() + param_store_->buffer_bytes();
  }
  r.gradients = reducer_->gradient_bytes();
  if (offload_) {
    r.master_weights = offload_->store().master_bytes();
    r.optimizer_states = optimizer_->state_bytes() + offload_->store().state_bytes();
    r.offload_buffers = offload_->host_buffer_bytes();
    r.nvme = offload_->store().disk_bytes();
  } else {
    const bool aliased = options_.storage_dtype == DType::f32 && !param_store_;
    r.master_weights = aliased ? 0 : master_.nbytes();
    r.optimizer_states = optimizer_->state_bytes();
  }
  r.persistent_gathered = coordinator_->persistent_bytes();
  r.bucket_peak = reducer_->bucket_peak_bytes();
  r.gathered_peak = coordinator_->gathered_peak_bytes();
  return r;
}

std::vector<std::pair<std::string, Tensor>> Engine::full_parameters() {
  Tensor full;
  const Tensor master = offload_ ? offload_->master_copy() : master_;
  if (options_.stage == 0) {
    full = master.to(Device::cpu());
  } else {
    full = Tensor::empty({layout_->total()}, DType::f32, options_.device);
    group_->all_gather(full, master.device() == options_.device ? master : master.to(options_.device)).wait();
    full = full.to(Device::cpu());
  }
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& slot : layout_->slots()) out.emplace_back(slot.name, full.view(size_t(slot.offset), slot.param->shape));
  return out;
}

Initialized initialize(std::shared_ptr<nn::Module> model, std::shared_ptr<nn::Loss> loss, const Config& config,
                       std::shared_ptr<data::Dataset> training_data, std::shared_ptr<comm::ProcessGroup> group) {
  if (!group) group = comm::init_process_group();
  auto engine = std::make_shared<Engine>(std::move(model), std::move(loss), config, group);
  engine->set_training_data(training_data);
  return {engine, &engine->optimizer(), std::move(training_data)};
}

}  // namespace zt::engine
