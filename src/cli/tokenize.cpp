// `zt tokenize`: text, folders or JSONL into token shards, with a progress bar on stderr.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "commands.hpp"
#include "zt/data/tokenize_corpus.hpp"
#include "zt/io/tokenizer.hpp"

namespace zt::cli {
namespace {

struct TokenizeArgs {
  data::TokenizeCorpusOptions options;
  std::string tokenizer;
  bool no_eos = false;
  int32_t eos_id = -1;
};

// A terminal gets a bar redrawn in place; a log file gets a line every few seconds.
class ProgressBar {
 public:
  ProgressBar() : tty_(::isatty(STDERR_FILENO) != 0) {}

  void update(const data::TokenizeProgress& p) {
    latest_ = p;
    const auto now = std::chrono::steady_clock::now();
    if (!tty_ && now - last_ < std::chrono::seconds(5)) return;
    last_ = now;
    draw(p);
  }
  void done() {
    draw(latest_);
    if (tty_) std::fputc('\n', stderr);
  }

 private:
  void draw(const data::TokenizeProgress& p) {
    const double frac = p.bytes_total ? double(p.bytes_done) / double(p.bytes_total) : 1.0;
    constexpr int kWidth = 30;
    const int filled = int(frac * kWidth);
    const double mb = double(p.bytes_done) / 1e6;
    std::fprintf(stderr, "%s[%.*s%*s] %5.1f%% %9.1f / %.1f MB %7.1f MB/s %10llu docs %12llu tokens%s",
                 tty_ ? "\r" : "", filled, "##############################", kWidth - filled, "", 100 * frac, mb,
                 double(p.bytes_total) / 1e6, p.seconds > 0 ? mb / p.seconds : 0.0,
                 static_cast<unsigned long long>(p.documents), static_cast<unsigned long long>(p.tokens),
                 tty_ ? "" : "\n");
    std::fflush(stderr);
  }

  bool tty_;
  data::TokenizeProgress latest_;
  std::chrono::steady_clock::time_point last_{};
};

void run(TokenizeArgs& args) {
  const auto tokenizer = io::load_tokenizer(args.tokenizer);
  data::TokenizeCorpusOptions& o = args.options;
  o.tokenizer_name = args.tokenizer;
  o.append_eos = !args.no_eos;
  if (args.eos_id >= 0) o.eos_id = args.eos_id;
  std::fprintf(stderr, "tokenizer: %s (%s, vocab %d)\n", args.tokenizer.c_str(), tokenizer->kind().c_str(),
               tokenizer->vocab_size());
  ProgressBar bar;
  const auto r = data::tokenize_corpus(*tokenizer, o, [&](const data::TokenizeProgress& p) { bar.update(p); });
  bar.done();
  const double mb = double(r.bytes) / 1e6;
  std::printf("documents %llu, tokens %llu, %.1f MB in %.2f s (%.1f MB/s, %.0f tokens/s), %zu shard%s in %s\n",
              static_cast<unsigned long long>(r.documents), static_cast<unsigned long long>(r.tokens), mb, r.seconds,
              r.seconds > 0 ? mb / r.seconds : 0.0, r.seconds > 0 ? double(r.tokens) / r.seconds : 0.0,
              r.shards.size(), r.shards.size() == 1 ? "" : "s", o.out_dir.c_str());
  if (r.repaired_documents) {
    std::printf("%llu documents held invalid UTF-8, replaced by U+FFFD\n",
                static_cast<unsigned long long>(r.repaired_documents));
  }
}

}  // namespace

void add_tokenize_command(CLI::App& app) {
  auto args = std::make_shared<TokenizeArgs>();
  data::TokenizeCorpusOptions& o = args->options;
  CLI::App* cmd = app.add_subcommand("tokenize", "tokenize text files, folders or JSONL into token shards");
  cmd->add_option("inputs", o.inputs, "text or JSONL files, or folders of them")->required();
  cmd->add_option("--tokenizer", args->tokenizer, "model folder, tokenizer.json or tokenizer.model")->required();
  cmd->add_option("--out", o.out_dir, "folder for the shards")->required();
  cmd->add_option("--jsonl-field", o.jsonl_field, "JSONL field holding the text")->capture_default_str();
  cmd->add_flag("--jsonl", o.force_jsonl, "read every input as JSONL (default: by extension .jsonl/.ndjson)");
  cmd->add_option("--shard-tokens", o.shard_tokens, "tokens per shard")->capture_default_str();
  cmd->add_option("--threads", o.threads, "tokenizer threads (0: one per hardware thread)")->capture_default_str();
  cmd->add_option("--eos-id", args->eos_id, "end-of-text id after each document (default: the tokenizer's)");
  cmd->add_flag("--no-eos", args->no_eos, "write no end-of-text id between documents");
  cmd->add_flag("--add-special-tokens", o.add_special_tokens,
                "put the tokenizer's special tokens around each document (e.g. Llama-3's BOS)");
  cmd->add_option("--prefix", o.shard_prefix, "shard file name prefix")->capture_default_str();
  cmd->callback([args] { run(*args); });
}

}  // namespace zt::cli
