// The ZeRO engine: trains any Module under DeepSpeed's config, as DeepSpeed's engine does.
//
//   auto [engine, optimizer, data, scheduler] = zt::engine::initialize(model, loss, config);
//   for (...) { engine->forward(inputs, targets); engine->backward(); engine->step(); }
//
// forward/backward run one micro-batch; step() acts at the accumulation boundary (every
// gradient_accumulation_steps micro-batches): it waits for the gradient reductions, unscales
// and checks for overflow (fp16), takes the global norm over all shards, clips, steps the
// optimizer on this rank's f32 shard and brings the parameters up to date. The model code is
// unchanged under every stage: the engine works through the module hooks.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "zt/comm/process_group.hpp"
#include "zt/data/dataset.hpp"
#include "zt/engine/config.hpp"
#include "zt/nn/loss.hpp"
#include "zt/nn/module.hpp"
#include "zt/optim/optimizer.hpp"
#include "zt/zero/grad_reducer.hpp"
#include "zt/zero/param_coordinator.hpp"

namespace zt::engine {

class LossScale;
class LearningRate;
class OptimizerOffload;
class QueuedClip;
class StepGraph;

class Engine {
 public:
  Engine(std::shared_ptr<nn::Module> model, std::shared_ptr<nn::Loss> loss, const Config& config,
         std::shared_ptr<comm::ProcessGroup> group);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // One micro-batch: the model's forward and the loss; returns this rank's loss.
  double forward(const Tensor& inputs, const Tensor& targets);
  void backward();
  // At the accumulation boundary: the optimizer step (true when applied, false when an fp16
  // overflow skipped it). Between boundaries: nothing (false).
  bool step();
  // Runs gradient_accumulation_steps micro-batches from data and steps; returns the loss
  // averaged over the micro-batches and the ranks.
  double train_batch(data::Dataset& data, int64_t seq_len);

  bool is_gradient_accumulation_boundary() const;
  int64_t global_steps() const { return global_steps_; }
  int64_t micro_steps() const { return micro_steps_; }
  int64_t skipped_steps() const { return skipped_steps_; }
  // train_batch's forwards and backwards replayed as one CUDA graph (0 when they are not).
  int64_t step_graph_replays() const;
  // The last step's gradient norm (over the ranks, unscaled). Where the clip factor is computed on
  // the GPU, the norm is read here, after the update was queued (this waits for the norm, not the
  // update); a norm that is not finite is an error here, and that step's update was not applied.
  double last_grad_norm();
  double lr() const;
  double loss_scale() const;
  const Config& config() const { return config_; }
  nn::Module& module() { return *model_; }
  comm::ProcessGroup& group() { return *group_; }
  const zero::ParamCoordinator& coordinator() const { return *coordinator_; }
  optim::Optimizer& optimizer() { return *optimizer_; }
  const zero::FlatLayout& layout() const { return *layout_; }
  // offload_optimizer {device: cpu}: this rank's f32 master weights and optimizer states live in
  // host memory or files on NVMe, the optimizer steps there (docs/ARCHITECTURE.md, "Optimizer offload").
  bool offloads_optimizer() const { return offload_ != nullptr; }
  // offload_param {device: cpu | nvme} (stage 3): this rank's parameter partition lives in host
  // memory or an NVMe file, and each module's parameters are fetched to the device before it runs.
  bool offloads_parameters() const { return param_store_ != nullptr; }
  // Where the model states live and how activations are kept, one line: "parameters: cuda:0,
  // gradients: cuda:0, master weights and optimizer states: host (pinned transfers), activations:
  // checkpointed at 12 of 12 blocks, inputs in pinned host memory"; with offload_param
  // "parameters: host (pinned), fetched per module, ...".
  std::string placement() const;

  // What this rank holds, measured from its buffers.
  zero::MemoryReport memory_report() const;
  // The whole model's parameters in f32 (from the master weights), on every rank: for export
  // and for comparing stages. Collective.
  std::vector<std::pair<std::string, Tensor>> full_parameters();

  // Checkpoints (docs/ARCHITECTURE.md, "Checkpoints"); collective. Every rank writes its shard of
  // the f32 master weights and optimizer states into dir/tag (default "global_step<N>"), with
  // the schedule, loss scale, step counters, data positions and client_state; `latest` then
  // names the tag. A load reads dir/tag (default: the tag `latest` names) at any world size
  // and stage, and returns the client_state saved with it.
  void save_checkpoint(const std::string& dir, const std::string& tag = "",
                       const nlohmann::json& client_state = nlohmann::json::object());
  nlohmann::json load_checkpoint(const std::string& dir, const std::string& tag = "", bool load_optimizer_states = true,
                                 bool load_lr_scheduler_states = true, bool load_module_only = false);
  // The data whose position checkpoints save and restore (initialize() sets it).
  void set_training_data(std::shared_ptr<data::Dataset> data) { training_data_ = std::move(data); }

 private:
  void install_hooks();
  void install_segments();
  Tensor master_gradients_f32();
  // queued: the loss goes to loss_->forward_queued, its value read by step() into queued_losses_
  // (0 is returned).
  double forward(const Tensor& inputs, const Tensor& targets, bool queued);
  bool steps_mixed_on_device() const;  // AdamW on the GPU, bf16/f16 storage: gradients and parameters in one pass
  optim::StepTarget mixed_step_target(const Tensor& grads);  // that step's one target
  bool clips_on_device() const;        // the clip factor computed on the GPU and read there by AdamW (QueuedClip)
  bool step_clipped_on_device(const Tensor& grads);
  // Why train_batch cannot replay its forwards and backwards as a CUDA graph ("" when it can).
  std::string step_graph_refusal() const;
  void run_micro_steps(const std::vector<std::pair<Tensor, Tensor>>& batches);  // forward and backward each
  void finish_update();                // after the optimizer's step: parameters out, schedules on, gradients cleared
  Tensor my_parameters() const;        // this rank's partition of the parameter storage
  void cast_master_into_parameters();  // the master weights (host or device) into my_parameters()
  void publish_parameters();           // stages 1-2: all-gather the partitions; stage 3: refresh

  std::shared_ptr<nn::Module> model_;
  std::shared_ptr<nn::Loss> loss_;
  Config config_;
  std::shared_ptr<comm::ProcessGroup> group_;
  zero::ZeroOptions options_;
  DType compute_dtype_;
  std::unique_ptr<zero::FlatLayout> layout_;
  Tensor param_storage_;   // full flat (stages 0-2) or this rank's partition (stage 3), storage dtype
  std::shared_ptr<zero::ParamStore> param_store_;  // offload_param: the partition instead of param_storage_
  Tensor master_;          // f32: this rank's shard (all of it at stage 0); may alias param_storage_; none when offloaded
  std::unique_ptr<OptimizerOffload> offload_;  // offload_optimizer: master and states off the device
  std::unique_ptr<zero::GradReducer> reducer_;
  std::unique_ptr<zero::ParamCoordinator> coordinator_;
  std::unique_ptr<optim::Optimizer> optimizer_;
  std::unique_ptr<LearningRate> learning_rate_;
  std::unique_ptr<LossScale> loss_scale_;
  std::unique_ptr<QueuedClip> queued_clip_;  // where clips_on_device(): made at the first step
  std::unique_ptr<StepGraph> step_graph_;    // where step_graph_refusal() is empty (ZT_CUDA_GRAPHS)
  std::shared_ptr<nn::ModuleHooks> hooks_;
  std::vector<optim::Segment> segments_;  // each parameter's piece of master_, for per-tensor optimizers
  int64_t micro_steps_ = 0, global_steps_ = 0, skipped_steps_ = 0;
  double last_grad_norm_ = 0;
  std::vector<double> queued_losses_;  // the losses step() read for train_batch
  bool forward_pending_ = false;
  std::shared_ptr<data::Dataset> training_data_;
};

struct Initialized {
  std::shared_ptr<Engine> engine;
  optim::Optimizer* optimizer = nullptr;
  std::shared_ptr<data::Dataset> training_data;
};

// DeepSpeed's initialize: the engine (with its optimizer and learning-rate schedule) for a
// model, a loss and a config; the process group defaults to the world.
Initialized initialize(std::shared_ptr<nn::Module> model, std::shared_ptr<nn::Loss> loss, const Config& config,
                       std::shared_ptr<data::Dataset> training_data = nullptr,
                       std::shared_ptr<comm::ProcessGroup> group = nullptr);

}  // namespace zt::engine
