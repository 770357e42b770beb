// Tokenizing a text corpus into token shards (the library side of `zt tokenize`).
//
// Documents: each plain-text file is one document; each line of a *.jsonl / *.ndjson file is
// one document, its text in a string field (default "text"). Every document is followed by
// the eos id. Documents are tokenized in parallel but written in input order, so the shards
// are the same for any thread count. Shards hold shard_tokens tokens each (the last fewer; a
// document may continue into the next shard), and a manifest.json lists them.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "zt/io/tokenizer.hpp"

namespace zt::data {

struct TokenizeCorpusOptions {
  std::vector<std::string> inputs;  // files and folders (a folder: every file below it, sorted)
  std::string out_dir;
  std::string jsonl_field = "text";
  bool force_jsonl = false;          // read every input as JSONL, whatever its extension
  uint64_t shard_tokens = 100'000'000;
  int threads = 0;                   // 0: one per hardware thread
  bool append_eos = true;            // after every document
  std::optional<int32_t> eos_id;     // overrides the tokenizer's
  bool add_special_tokens = false;   // the tokenizer's prefix/suffix ids (e.g. Llama-3's BOS) around each document
  std::string shard_prefix = "shard";
  std::string tokenizer_name;        // recorded in the manifest
};

struct TokenizeProgress {
  uint64_t bytes_done = 0, bytes_total = 0;
  uint64_t documents = 0, tokens = 0;
  double seconds = 0;
};

struct TokenizeCorpusResult {
  uint64_t documents = 0, tokens = 0, bytes = 0;
  uint64_t repaired_documents = 0;  // documents whose invalid UTF-8 became U+FFFD
  double seconds = 0;
  std::vector<std::string> shards;
  std::string manifest;
};

// The input files in the order they are read: each input in turn, a folder's files sorted by
// path (hidden files and folders skipped). zt::Error for a path that does not exist.
std::vector<std::string> list_corpus_files(const std::vector<std::string>& inputs);

// progress, when given, is called from the calling thread about ten times a second and once
// at the end.
TokenizeCorpusResult tokenize_corpus(const io::Tokenizer& tokenizer, const TokenizeCorpusOptions& options,
                                     const std::function<void(const TokenizeProgress&)>& progress = {});

}  // namespace zt::data
