// DeepSpeed's activation_checkpointing section applied to a model, and the words that say how a
// model keeps its activations for the backward.
#pragma once

#include <string>

#include "zt/core/device.hpp"
#include "zt/engine/config.hpp"
#include "zt/nn/module.hpp"

namespace zt::engine {

// Nothing when the section is absent. A CausalLM checkpoints its first number_checkpoints decoder
// blocks (all of them when unset; a count past the last block means all); any other model keeps
// the nn::Checkpoint modules its author placed and gets the section's cpu_checkpointing on each.
// A section for a model with neither decoder blocks nor a Checkpoint, or number_checkpoints for a
// model without decoder blocks, is an error naming the key.
void apply_activation_checkpointing(nn::Module& model, const ActivationCheckpointingConfig& config);

// "kept for backward", "checkpointed at 12 of 12 blocks, inputs in pinned host memory",
// "checkpointed at 3 modules, inputs on cuda:0"; device is where the model computes.
std::string describe_activations(nn::Module& model, Device device);

}  // namespace zt::engine
