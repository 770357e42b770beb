// `zt convert CHECKPOINT --to hf OUT | --to safetensors FILE`: consolidates a sharded engine
// checkpoint's f32 master weights into a Hugging Face model folder or one safetensors file.
#include <cstdio>

#include "commands.hpp"
#include "zt/core/error.hpp"
#include "zt/engine/checkpoint.hpp"
#include "zt/io/safetensors_sharded.hpp"

namespace zt::cli {

void add_convert_command(CLI::App& app) {
  struct Args {
    std::string checkpoint, to, out, tag, max_shard_size = "5GB";
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("convert", "export a training checkpoint as a Hugging Face model or safetensors file");
  cmd->add_option("checkpoint", args->checkpoint, "checkpoint folder (with 'latest') or one tag's folder")->required();
  cmd->add_option("--to", args->to, "hf (a model folder) or safetensors (one file)")
      ->required()
      ->check(CLI::IsMember({"hf", "safetensors"}));
  cmd->add_option("out", args->out, "output folder (hf) or file (safetensors)")->required();
  cmd->add_option("--tag", args->tag, "the tag to export (default: the one 'latest' names)");
  cmd->add_option("--max-shard-size", args->max_shard_size, "hf: split model.safetensors past this size")
      ->capture_default_str();
  cmd->callback([args] {
    const std::string source = engine::resolve_checkpoint(args->checkpoint, args->tag);
    if (args->to == "hf") {
      engine::export_checkpoint_hf(source, args->out, io::parse_byte_size(args->max_shard_size));
    } else {
      engine::export_checkpoint_safetensors(source, args->out);
    }
    std::printf("wrote %s (%s) from %s\n", args->out.c_str(), args->to.c_str(), source.c_str());
  });
}

}  // namespace zt::cli
