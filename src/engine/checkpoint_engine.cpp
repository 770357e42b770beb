// Engine::save_checkpoint and Engine::load_checkpoint: every rank writes its partition of the
// flat layout; a load maps the saved flat ranges onto this engine's layout by parameter name,
// so world size and stage may differ between save and load.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstring>
#include <filesystem>
#include <random>

#include "engine_parts.hpp"
#include "optimizer_offload.hpp"
#include "step_graph.hpp"
#include "zt/core/log.hpp"
#include "zt/engine/checkpoint.hpp"
#include "zt/engine/engine.hpp"
#include "zt/io/atomic_file.hpp"
#include "zt/io/safetensors.hpp"
#include "zt/models/causal_lm.hpp"

namespace zt::engine {

void checkpoint_fault_point(const std::string& point);  // checkpoint_format.cpp

namespace fs = std::filesystem;

namespace {

// Every rank ends the same way: when any rank failed, all throw (the lowest failing rank's
// message), so that no rank goes on into a collective that the others never reach.
void agree_or_throw(comm::ProcessGroup& group, const std::string& error, const char* what) {
  if (group.size() == 1) {
    if (!error.empty()) ZT_THROW(error);
    return;
  }
  Tensor failed = Tensor::from_ints({1}, {error.empty() ? INT_MAX : group.rank()});
  group.all_reduce(failed, comm::ReduceOp::min).wait();
  const int root = failed.data<int32_t>()[0];
  if (root == INT_MAX) return;
  Tensor length = Tensor::from_ints({1}, {int32_t(error.size())});
  group.broadcast(length, root).wait();
  Tensor bytes = Tensor::zeros({std::max<int64_t>(1, length.data<int32_t>()[0])}, DType::u8);
  if (group.rank() == root) std::memcpy(bytes.raw(), error.data(), error.size());
  group.broadcast(bytes, root).wait();
  if (group.rank() == root) ZT_THROW(error);
  ZT_THROW(what, " failed on rank ", root, ": ",
           std::string(static_cast<const char*>(bytes.raw()), size_t(length.data<int32_t>()[0])));
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

void sync_folder(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

void write_text_atomically(const fs::path& path, const std::string& text) {
  io::AtomicFile f(path.string());
  f.append(text.data(), text.size());
  f.commit();
}

void check_tag(const std::string& tag) {
  ZT_CHECK(!tag.empty() && tag != "latest" && tag.front() != '.' && tag.find('/') == std::string::npos,
           "checkpoint tag '", tag, "' is not a valid folder name (no '/', not 'latest', not starting with '.')");
}

// For each slot of this engine's layout, the offset of the same parameter in the saved layout;
// a zt::Error naming what differs.
std::vector<int64_t> match_parameters(const CheckpointMeta& meta, const zero::FlatLayout& layout,
                                      const nlohmann::json& model_config, const std::string& where) {
  if (!meta.model_config.is_null() && !model_config.is_null()) {
    const auto saved = meta.model_config.value("vocab_size", int64_t(-1));
    const auto mine = model_config.value("vocab_size", int64_t(-1));
    ZT_CHECK(saved == mine, "checkpoint ", where, " has a vocabulary of ", saved, " tokens, the model ", mine);
  }
  std::map<std::string, const CheckpointParameter*> saved;
  for (const auto& p : meta.parameters) saved[p.name] = &p;
  std::vector<int64_t> offsets;
  for (const auto& slot : layout.slots()) {
    const auto it = saved.find(slot.name);
    ZT_CHECK(it != saved.end(), "checkpoint ", where, " has no parameter '", slot.name,
             "' (is it another model's checkpoint? it holds ", meta.parameters.size(), " parameters, the model ",
             layout.slots().size(), ")");
    ZT_CHECK(it->second->shape == slot.param->shape, "checkpoint ", where, ": parameter '", slot.name, "' is ",
             shape_str(it->second->shape), " there but ", shape_str(slot.param->shape), " in the model");
    offsets.push_back(it->second->offset);
    saved.erase(it);
  }
  ZT_CHECK(saved.empty(), "checkpoint ", where, " has parameter '", saved.empty() ? "" : saved.begin()->first,
           "' that the model lacks (", saved.size(), " in all; another model's checkpoint?)");
  return offsets;
}

// Saved tensor `name` over the flat range `mine` of the new layout into dst (mine.size() floats,
// zeros in padding).
void read_range_into(CheckpointShards& shards, const std::string& name, const zero::FlatLayout& layout,
                     const std::vector<int64_t>& saved_offsets, zero::Range mine, float* dst) {
  std::fill(dst, dst + mine.size(), 0.0f);
  const auto& slots = layout.slots();
  for (size_t i = 0; i < slots.size(); ++i) {
    const zero::Range r = zero::intersect({slots[i].offset, slots[i].offset + slots[i].numel}, mine);
    if (r.size() == 0) continue;
    const int64_t from = saved_offsets[i] + (r.begin - slots[i].offset);
    shards.read(name, from, from + r.size(), dst + (r.begin - mine.begin));
  }
}

Tensor read_range(CheckpointShards& shards, const std::string& name, const zero::FlatLayout& layout,
                  const std::vector<int64_t>& saved_offsets, zero::Range mine) {
  Tensor out = Tensor::empty({mine.size()}, DType::f32);
  read_range_into(shards, name, layout, saved_offsets, mine, out.data<float>());
  return out;
}

// Opens (and so checks) every saved shard that holds part of the flat range `mine` of the new layout.
void check_shards(CheckpointShards& shards, const zero::FlatLayout& layout, const std::vector<int64_t>& saved_offsets,
                  zero::Range mine) {
  const auto& slots = layout.slots();
  for (size_t i = 0; i < slots.size(); ++i) {
    const zero::Range r = zero::intersect({slots[i].offset, slots[i].offset + slots[i].numel}, mine);
    if (r.size() > 0) shards.check(saved_offsets[i] + (r.begin - slots[i].offset), saved_offsets[i] + (r.end - slots[i].offset));
  }
}

}  // namespace

void Engine::save_checkpoint(const std::string& dir, const std::string& tag_arg, const nlohmann::json& client_state) {
  last_grad_norm();  // a step whose norm was queued and not read: an update that failed is not saved
  const std::string tag = tag_arg.empty() ? "global_step" + std::to_string(global_steps_) : tag_arg;
  check_tag(tag);
  const int rank = group_->rank(), world = group_->size();
  // The same tag on every rank: max and min of its hash agree.
  Tensor hashes = Tensor::zeros({2}, DType::i64);
  const auto h = int64_t(fnv1a(tag) >> 1);
  hashes.data<int64_t>()[0] = h;
  hashes.data<int64_t>()[1] = -h;
  if (world > 1) group_->all_reduce(hashes, comm::ReduceOp::max).wait();
  ZT_CHECK(hashes.data<int64_t>()[0] == -hashes.data<int64_t>()[1], "save_checkpoint: the tag differs across ranks (rank ",
           rank, " has '", tag, "')");

  const fs::path root(dir), staging = root / ("." + tag + ".saving"), final_dir = root / tag;
  Tensor save_id = Tensor::zeros({1}, DType::i64);
  std::string error;
  if (rank == 0) {
    try {
      fs::create_directories(root);
      fs::remove_all(staging);
      fs::create_directories(staging);
    } catch (const std::exception& e) {
      error = str("save_checkpoint: cannot create ", staging.string(), ": ", e.what());
    }
    std::mt19937_64 gen(uint64_t(std::chrono::steady_clock::now().time_since_epoch().count()) ^ uint64_t(::getpid()));
    save_id.data<int64_t>()[0] = int64_t(gen() >> 1);
  }
  agree_or_throw(*group_, error, "save_checkpoint");
  if (world > 1) group_->broadcast(save_id, 0).wait();
  const auto id = uint64_t(save_id.data<int64_t>()[0]);

  // This rank's shard: partition `rank` of the flat layout, whatever the stage.
  const zero::Range part = layout_->partition(rank);
  const int64_t held_begin = options_.stage == 0 ? 0 : part.begin;
  const auto slice = [&](const Tensor& t) { return t.view(size_t(part.begin - held_begin), {part.size()}); };
  std::vector<std::string> state_names;
  if (offload_) state_names = offload_->store().states();
  else if (optimizer_->has_states(0))
    for (const auto& [name, t] : optimizer_->state(0)) state_names.push_back(name);
  try {
    std::vector<io::TensorSpec> specs{{"master", DType::f32, {part.size()}}};
    for (const auto& name : state_names) specs.push_back({name, DType::f32, {part.size()}});
    std::map<std::string, std::string> metadata{{"format", "zt-zero-shard"},
                                                {"save_id", std::to_string(id)},
                                                {"rank", std::to_string(rank)},
                                                {"world_size", std::to_string(world)},
                                                {"flat_begin", std::to_string(part.begin)},
                                                {"flat_end", std::to_string(part.end)}};
    io::SafetensorsWriter writer((staging / checkpoint_shard_name(rank, world)).string(), specs, metadata);
    if (offload_) {
      // Group by group: NVMe-offloaded states pass through one swap buffer at a time.
      OffloadStore& store = offload_->store();
      std::vector<std::string> names{"master"};
      names.insert(names.end(), state_names.begin(), state_names.end());
      for (size_t i = 0; i < names.size(); ++i) {
        for (size_t g = 0; g < store.groups().size(); ++g)
          writer.write_range(names[i], store.groups()[g].begin, store.read(names[i], int(g)));
        if (i == 0) checkpoint_fault_point("shard_partial");
      }
    } else {
      writer.write("master", slice(master_));
      checkpoint_fault_point("shard_partial");
      for (const auto& name : state_names) writer.write(name, slice(optimizer_->state(0).at(name)));
    }
    writer.finish();
  } catch (const std::exception& e) {
    error = str("save_checkpoint: writing rank ", rank, "'s shard in ", staging.string(), ": ", e.what());
  }
  agree_or_throw(*group_, error, "save_checkpoint");
  checkpoint_fault_point("shards_written");

  Tensor positions = Tensor::zeros({world}, DType::i64);
  const Tensor mine = Tensor::zeros({1}, DType::i64);
  mine.data<int64_t>()[0] = training_data_ ? int64_t(training_data_->position()) : 0;
  if (world > 1) {
    group_->all_gather(positions, mine).wait();
  } else {
    positions.copy_from(mine);
  }

  if (rank == 0) {
    try {
      CheckpointMeta meta;
      meta.tag = tag;
      meta.save_id = id;
      meta.world_size = world;
      meta.stage = options_.stage;
      meta.alignment = options_.alignment;
      meta.total = layout_->total();
      meta.partition_size = layout_->partition_size();
      meta.storage_dtype = dtype_name(options_.storage_dtype);
      for (const auto& slot : layout_->slots()) meta.parameters.push_back({slot.name, slot.param->shape, slot.offset, slot.numel});
      if (auto* lm = dynamic_cast<models::CausalLM*>(model_.get())) meta.model_config = lm->config().to_json();
      meta.optimizer = optimizer_->name();
      meta.optimizer_states = state_names;
      meta.optimizer_step = optimizer_->step_count();
      meta.global_steps = global_steps_;
      meta.micro_steps = micro_steps_;
      meta.skipped_steps = skipped_steps_;
      meta.lr_scheduler = learning_rate_->state_dict();
      meta.loss_scaler = loss_scale_->state_dict();
      meta.client_state = client_state;
      if (training_data_)
        for (int r = 0; r < world; ++r) meta.data_positions.push_back(uint64_t(positions.data<int64_t>()[r]));
      write_text_atomically(staging / "meta.json", meta.to_json().dump(1) + "\n");
      checkpoint_fault_point("meta_written");
      // Publish: the finished folder replaces an earlier save of the same tag, then `latest`.
      const fs::path old = root / ("." + tag + ".old");
      fs::remove_all(old);
      if (fs::exists(final_dir)) fs::rename(final_dir, old);
      fs::rename(staging, final_dir);
      sync_folder(root);
      fs::remove_all(old);
      checkpoint_fault_point("published");
      write_text_atomically(root / "latest", tag + "\n");
    } catch (const std::exception& e) {
      error = str("save_checkpoint: publishing ", final_dir.string(), ": ", e.what());
    }
  }
  agree_or_throw(*group_, error, "save_checkpoint");
}

nlohmann::json Engine::load_checkpoint(const std::string& dir, const std::string& tag, bool load_optimizer_states,
                                       bool load_lr_scheduler_states, bool load_module_only) {
  const int rank = group_->rank(), world = group_->size();
  // The loaded states are captured anew (after warming up) rather than trusted to the old graph.
  if (step_graph_) step_graph_->reset();
  const zero::Range mine = options_.stage == 0 ? zero::Range{0, layout_->total()} : layout_->partition(rank);
  CheckpointMeta meta;
  Tensor master;
  std::map<std::string, Tensor> states;
  std::unique_ptr<CheckpointShards> shards;
  std::vector<int64_t> saved_offsets;
  std::string error;
  const bool with_optimizer = load_optimizer_states && !load_module_only;
  try {
    const std::string tag_dir = resolve_checkpoint(dir, tag);
    meta = read_checkpoint_meta(tag_dir);
    nlohmann::json model_config;
    if (auto* lm = dynamic_cast<models::CausalLM*>(model_.get())) model_config = lm->config().to_json();
    const auto offsets = match_parameters(meta, *layout_, model_config, tag_dir);
    if (with_optimizer && !meta.optimizer_states.empty())
      ZT_CHECK(meta.optimizer == optimizer_->name(), "checkpoint ", tag_dir, " holds ", meta.optimizer,
               " states but the engine's optimizer is ", optimizer_->name(),
               " (load with load_optimizer_states = false to start it fresh)");
    shards = std::make_unique<CheckpointShards>(tag_dir, meta);
    if (offload_) {
      check_shards(*shards, *layout_, offsets, mine);  // read below, group by group, into the offload's store
      saved_offsets = offsets;
    } else {
      master = read_range(*shards, "master", *layout_, offsets, mine);
      if (with_optimizer)
        for (const auto& name : meta.optimizer_states) states[name] = read_range(*shards, name, *layout_, offsets, mine);
    }
  } catch (const std::exception& e) {
    error = e.what();
  }
  agree_or_throw(*group_, error, "load_checkpoint");

  if (offload_) {
    // Every shard was opened and checked; the states stream into the store one group at a time, so
    // that host memory holds no second copy of the partition (a failure here still ends on all ranks).
    OffloadStore& store = offload_->store();
    std::vector<std::string> names{"master"};
    if (with_optimizer) names.insert(names.end(), meta.optimizer_states.begin(), meta.optimizer_states.end());
    try {
      for (size_t g = 0; g < store.groups().size(); ++g) {
        const zero::Range r = store.groups()[g];
        for (const auto& name : names) {
          const Tensor target = store.load_target(name, int(g));
          read_range_into(*shards, name, *layout_, saved_offsets, {mine.begin + r.begin, mine.begin + r.end},
                          target.data<float>());
          store.commit_load(name, int(g));
        }
      }
      if (with_optimizer) store.set_states(meta.optimizer_states);
    } catch (const std::exception& e) {
      error = e.what();
    }
    agree_or_throw(*group_, error, "load_checkpoint");
  } else {
    // Everything was read on every rank: now change the engine.
    master_.copy_from(master);
    if (with_optimizer)
      for (auto& [name, t] : states) optimizer_->load_state(0, name, master_.device().is_cpu() ? t : t.to(master_.device()));
  }
  if (with_optimizer) optimizer_->set_step_count(meta.optimizer_step);
  if (!load_module_only) {
    global_steps_ = meta.global_steps;
    micro_steps_ = meta.micro_steps;
    skipped_steps_ = meta.skipped_steps;
    loss_scale_->load_state_dict(meta.loss_scaler);
    if (load_lr_scheduler_states) learning_rate_->load_state_dict(meta.lr_scheduler);
    if (training_data_ && !meta.data_positions.empty()) {
      // Ranks draw batches in step, so at another world size every rank takes rank 0's position.
      const size_t r = meta.world_size == world ? size_t(rank) : 0;
      training_data_->seek(meta.data_positions[r]);
    }
  }
  cast_master_into_parameters();
  publish_parameters();
  return meta.client_state;
}

}  // namespace zt::engine
