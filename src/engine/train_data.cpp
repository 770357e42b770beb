// The data behind `zt train --data`.
#include <filesystem>

#include "zt/comm/process_group.hpp"
#include "zt/core/log.hpp"
#include "zt/data/markov_corpus.hpp"
#include "zt/data/prefetching_dataset.hpp"
#include "zt/data/token_dataset.hpp"
#include "zt/data/tokenize_corpus.hpp"
#include "zt/engine/trainer.hpp"

namespace zt::engine {

namespace fs = std::filesystem;

namespace {

bool is_text_file(const fs::path& p) {
  const std::string ext = p.extension().string();
  return ext == ".txt" || ext == ".md" || ext == ".json" || ext == ".jsonl";
}

bool holds_shards(const fs::path& p) {
  if (!fs::is_directory(p)) return false;
  for (const auto& entry : fs::directory_iterator(p)) {
    const std::string ext = entry.path().extension().string();
    if (entry.is_regular_file() && (ext == ".ztok" || ext == ".bin")) return true;
  }
  return false;
}

bool needs_tokenizing(const fs::path& p) {
  if (fs::is_regular_file(p)) return is_text_file(p);
  if (!fs::is_directory(p) || holds_shards(p)) return false;
  for (const auto& entry : fs::recursive_directory_iterator(p))
    if (entry.is_regular_file() && is_text_file(entry.path())) return true;
  return false;
}

}  // namespace

std::string prepare_token_data(const TrainOptions& o) {
  ZT_CHECK(fs::exists(o.data), "--data ", o.data, " does not exist (give \"synthetic\", token shards or text files)");
  if (!needs_tokenizing(o.data)) return o.data;
  ZT_CHECK(fs::is_directory(o.model), "--data ", o.data, " is text: it needs a tokenizer, which comes from a Hugging Face "
           "model folder given as --model (\"", o.model, "\" is not one); or tokenize it first with `zt tokenize`");
  const fs::path cache = fs::path(o.data).string() + ".zt-shards";
  auto group = comm::world();
  if (group->rank() == 0 && !holds_shards(cache)) {
    const auto tokenizer = io::load_tokenizer(o.model);
    data::TokenizeCorpusOptions options;
    options.inputs = {o.data};
    options.out_dir = cache.string();
    options.tokenizer_name = o.model;
    log_info("tokenizing ", o.data, " with the tokenizer of ", o.model, " into ", cache.string());
    const auto r = data::tokenize_corpus(*tokenizer, options);
    log_info("tokenized ", r.documents, " documents into ", r.tokens, " tokens (", r.shards.size(), " shards)");
  }
  if (group->size() > 1) group->barrier().wait();
  return cache.string();
}

std::unique_ptr<data::Dataset> make_dataset(const TrainOptions& o, int64_t vocab_size, int rank, int world_size) {
  if (o.data == "synthetic") {
    data::MarkovCorpusOptions corpus;
    corpus.vocab_size = vocab_size;
    corpus.stream_seed = o.seed * 1000003ull + uint64_t(rank);
    return std::make_unique<data::PrefetchingDataset>(std::make_unique<data::MarkovCorpus>(corpus));
  }
  return std::make_unique<data::PrefetchingDataset>(
      std::make_unique<data::TokenDataset>(prepare_token_data(o), vocab_size, o.seed, rank, world_size));
}

}  // namespace zt::engine
