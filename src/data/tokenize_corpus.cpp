#include "zt/data/tokenize_corpus.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "io/utf8.hpp"
#include "zt/core/error.hpp"
#include "zt/data/token_shard.hpp"
#include "zt/io/atomic_file.hpp"

namespace zt::data {
namespace fs = std::filesystem;
namespace {

// Text is read and handed to the workers in batches of about this many bytes: large enough
// to amortize the hand-off, small enough to keep every thread busy and memory bounded.
constexpr size_t kBatchBytes = 4 << 20;

bool is_jsonl(const std::string& path) {
  const std::string ext = fs::path(path).extension().string();
  return ext == ".jsonl" || ext == ".ndjson";
}

struct Document {
  size_t begin, size;  // within Batch::data
  uint64_t line;       // 1-based line of a JSONL file; 0 for a whole text file
};

struct Batch {
  uint64_t seq = 0;
  const std::string* file = nullptr;
  bool jsonl = false;
  std::string data;
  std::vector<Document> docs;
};

struct Encoded {
  std::vector<int32_t> tokens;
  std::vector<uint64_t> doc_ends;  // token offset after each document
  uint64_t bytes = 0, repaired = 0;
};

// Reads the files into batches in order; called on the reader thread.
class CorpusReader {
 public:
  CorpusReader(const std::vector<std::string>& files, bool force_jsonl) : files_(files), force_jsonl_(force_jsonl) {}

  // The next batch, or false at the end of the corpus.
  bool next(Batch& batch) {
    batch.data.clear();
    batch.docs.clear();
    while (file_ < files_.size()) {
      const std::string& path = files_[file_];
      const bool jsonl = force_jsonl_ || is_jsonl(path);
      if (!in_.is_open()) {
        in_.open(path, std::ios::binary);
        ZT_CHECK(in_.is_open(), "cannot open corpus file '", path, "'");
        carry_.clear();
        line_ = 0;
      }
      batch.file = &path;
      batch.jsonl = jsonl;
      if (!jsonl) {
        // A text file is one document, read whole.
        batch.data.resize(size_t(fs::file_size(path)));
        in_.read(batch.data.data(), std::streamsize(batch.data.size()));
        ZT_CHECK(size_t(in_.gcount()) == batch.data.size(), "error reading corpus file '", path, "' (",
                 in_.gcount(), " of ", batch.data.size(), " bytes read)");
        batch.docs.push_back({0, batch.data.size(), 0});
        close_file();
        return true;
      }
      batch.data = std::move(carry_);
      carry_.clear();
      const size_t old = batch.data.size();
      batch.data.resize(old + kBatchBytes);
      in_.read(batch.data.data() + old, std::streamsize(kBatchBytes));
      ZT_CHECK(!in_.bad(), "error reading corpus file '", path, "'");
      batch.data.resize(old + size_t(in_.gcount()));
      const bool at_end = in_.eof() || in_.gcount() == 0;
      // Whole lines only: a partial last line waits for the next read.
      size_t end = batch.data.size();
      if (!at_end) {
        const size_t nl = batch.data.rfind('\n');
        end = nl == std::string::npos ? 0 : nl + 1;
        carry_.assign(batch.data, end, std::string::npos);
        batch.data.resize(end);
      }
      size_t pos = 0;
      while (pos < batch.data.size()) {
        size_t nl = batch.data.find('\n', pos);
        if (nl == std::string::npos) nl = batch.data.size();
        ++line_;
        size_t len = nl - pos;
        if (len > 0 && batch.data[pos + len - 1] == '\r') --len;
        if (batch.data.find_first_not_of(" \t", pos) < pos + len) batch.docs.push_back({pos, len, line_});
        pos = nl + 1;
      }
      if (at_end) close_file();
      if (!batch.docs.empty()) return true;
    }
    return false;
  }

 private:
  void close_file() {
    in_.close();
    in_.clear();
    ++file_;
  }

  const std::vector<std::string>& files_;
  bool force_jsonl_;
  size_t file_ = 0;
  std::ifstream in_;
  std::string carry_;
  uint64_t line_ = 0;
};

Encoded encode_batch(const io::Tokenizer& tok, const Batch& batch, const TokenizeCorpusOptions& opt,
                     std::optional<int32_t> eos) {
  Encoded out;
  out.tokens.reserve(batch.data.size() / 3);
  std::string repaired;
  for (const Document& d : batch.docs) {
    std::string_view text(batch.data.data() + d.begin, d.size);
    std::string field;
    if (batch.jsonl) {
      nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
      ZT_CHECK(!j.is_discarded(), "'", *batch.file, "' line ", d.line, " is not valid JSON");
      ZT_CHECK(j.is_object() && j.contains(opt.jsonl_field) && j[opt.jsonl_field].is_string(), "'", *batch.file,
               "' line ", d.line, " has no string field \"", opt.jsonl_field, "\"",
               j.is_object() && !j.empty() ? " (it has \"" + j.begin().key() + "\"...; choose one with --jsonl-field)"
                                           : std::string());
      field = j[opt.jsonl_field].get<std::string>();
      text = field;
    }
    if (io::utf8_first_invalid(text) != text.size()) {
      repaired = io::utf8_lossy(text);
      text = repaired;
      ++out.repaired;
    }
    if (opt.add_special_tokens) out.tokens.insert(out.tokens.end(), tok.prefix_ids().begin(), tok.prefix_ids().end());
    tok.encode_into(text, out.tokens);
    if (opt.add_special_tokens) out.tokens.insert(out.tokens.end(), tok.suffix_ids().begin(), tok.suffix_ids().end());
    if (eos) out.tokens.push_back(*eos);
    out.doc_ends.push_back(out.tokens.size());
  }
  out.bytes = batch.data.size();  // every byte read, blank lines included, for progress
  return out;
}

// Writes encoded batches, in order, into shards of a fixed number of tokens.
class ShardSink {
 public:
  ShardSink(const TokenizeCorpusOptions& opt, uint32_t vocab_size, std::optional<int32_t> eos)
      : opt_(opt), vocab_size_(vocab_size), eos_(eos), token_bytes_(token_bytes_for_vocab(vocab_size)) {}

  void write(const Encoded& e) {
    size_t pos = 0;
    size_t doc = 0;
    while (pos < e.tokens.size()) {
      if (!writer_) open();
      const size_t n = std::min<uint64_t>(e.tokens.size() - pos, opt_.shard_tokens - writer_->size());
      writer_->append(std::span(e.tokens).subspan(pos, n));
      pos += n;
      uint64_t ended = 0;
      while (doc < e.doc_ends.size() && e.doc_ends[doc] <= pos) ++doc, ++ended;
      writer_->add_documents(ended);
      shard_documents_ += ended;
      if (writer_->size() == opt_.shard_tokens) close();
    }
  }

  void finish() {
    if (writer_) close();
  }

  uint32_t token_bytes() const { return token_bytes_; }
  const std::vector<std::string>& shards() const { return shards_; }
  const nlohmann::json& entries() const { return entries_; }

 private:
  void open() {
    char name[64];
    std::snprintf(name, sizeof name, "_%06zu.ztok", shards_.size());
    const std::string path = (fs::path(opt_.out_dir) / (opt_.shard_prefix + name)).string();
    writer_ = std::make_unique<TokenShardWriter>(path, token_bytes_, vocab_size_, eos_);
    shard_documents_ = 0;
  }
  void close() {
    writer_->finish();
    shards_.push_back(writer_->path());
    entries_.push_back({{"file", fs::path(writer_->path()).filename().string()},
                        {"tokens", writer_->size()},
                        {"documents", shard_documents_}});
    writer_.reset();
  }

  const TokenizeCorpusOptions& opt_;
  uint32_t vocab_size_;
  std::optional<int32_t> eos_;
  uint32_t token_bytes_;
  std::unique_ptr<TokenShardWriter> writer_;
  uint64_t shard_documents_ = 0;
  std::vector<std::string> shards_;
  nlohmann::json entries_ = nlohmann::json::array();
};

void remove_stale_shards(const std::string& dir, const std::string& prefix, const std::vector<std::string>& keep) {
  std::set<std::string> kept;
  for (const std::string& k : keep) kept.insert(fs::path(k).filename().string());
  const std::regex shard_name(std::regex_replace(prefix, std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)") +
                              R"(_\d{6}\.ztok)");
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_regular_file() && !kept.count(name) && std::regex_match(name, shard_name)) {
      std::error_code ec;
      fs::remove(entry.path(), ec);
    }
  }
}

}  // namespace

std::vector<std::string> list_corpus_files(const std::vector<std::string>& inputs) {
  std::vector<std::string> files;
  for (const std::string& input : inputs) {
    ZT_CHECK(fs::exists(input), "corpus input '", input, "' does not exist");
    if (!fs::is_directory(input)) {
      files.push_back(input);
      continue;
    }
    std::vector<std::string> found;
    for (auto it = fs::recursive_directory_iterator(input); it != fs::recursive_directory_iterator(); ++it) {
      const std::string name = it->path().filename().string();
      if (!name.empty() && name[0] == '.') {
        if (it->is_directory()) it.disable_recursion_pending();
        continue;
      }
      if (it->is_regular_file()) found.push_back(it->path().string());
    }
    std::sort(found.begin(), found.end());
    files.insert(files.end(), found.begin(), found.end());
  }
  return files;
}

TokenizeCorpusResult tokenize_corpus(const io::Tokenizer& tok, const TokenizeCorpusOptions& opt,
                                     const std::function<void(const TokenizeProgress&)>& progress) {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  ZT_CHECK(opt.shard_tokens > 0, "the tokens per shard must be positive");
  ZT_CHECK(!opt.out_dir.empty(), "no output folder given for the token shards");
  const std::optional<int32_t> eos = !opt.append_eos ? std::nullopt : opt.eos_id ? opt.eos_id : tok.eos_id();
  ZT_CHECK(!opt.append_eos || eos.has_value(), "the tokenizer names no end-of-text token; give its id (--eos-id) ",
           "or write documents without one (--no-eos)");
  const std::vector<std::string> files = list_corpus_files(opt.inputs);
  ZT_CHECK(!files.empty(), "no corpus files found in the inputs");
  std::error_code ec;
  fs::create_directories(opt.out_dir, ec);
  ZT_CHECK(fs::is_directory(opt.out_dir), "cannot create the output folder '", opt.out_dir, "': ", ec.message());

  TokenizeProgress prog;
  for (const std::string& f : files) prog.bytes_total += fs::file_size(f);
  const int threads = opt.threads > 0 ? opt.threads : int(std::max(1u, std::thread::hardware_concurrency()));
  const size_t max_in_flight = size_t(threads) * 3;

  // Reader -> workers through `pending`; workers -> this thread through `done`, keyed by the
  // batch's sequence number so that output keeps input order.
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Batch> pending;  // used as a FIFO via pending_head
  size_t pending_head = 0;
  std::map<uint64_t, Encoded> done;
  size_t in_flight = 0;
  bool reading_done = false, stop = false;
  std::exception_ptr failure;
  const auto fail = [&](std::exception_ptr e) {
    std::lock_guard<std::mutex> lock(mu);
    if (!failure) failure = e;
    stop = true;
    cv.notify_all();
  };

  std::thread reader([&] {
    try {
      CorpusReader corpus(files, opt.force_jsonl);
      for (uint64_t seq = 0;; ++seq) {
        Batch batch;
        if (!corpus.next(batch)) break;
        batch.seq = seq;
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return stop || in_flight < max_in_flight; });
        if (stop) return;
        ++in_flight;
        pending.push_back(std::move(batch));
        cv.notify_all();
      }
    } catch (...) {
      fail(std::current_exception());
      return;
    }
    std::lock_guard<std::mutex> lock(mu);
    reading_done = true;
    cv.notify_all();
  });

  std::vector<std::thread> workers;
  for (int w = 0; w < threads; ++w) {
    workers.emplace_back([&] {
      for (;;) {
        Batch batch;
        {
          std::unique_lock<std::mutex> lock(mu);
          cv.wait(lock, [&] { return stop || pending_head < pending.size() || reading_done; });
          if (stop || pending_head == pending.size()) return;
          batch = std::move(pending[pending_head++]);
          if (pending_head == pending.size()) {
            pending.clear();
            pending_head = 0;
          }
        }
        try {
          Encoded e = encode_batch(tok, batch, opt, eos);
          std::lock_guard<std::mutex> lock(mu);
          done.emplace(batch.seq, std::move(e));
          cv.notify_all();
        } catch (...) {
          fail(std::current_exception());
          return;
        }
      }
    });
  }

  TokenizeCorpusResult result;
  ShardSink sink(opt, uint32_t(tok.vocab_size()), eos);
  auto last_report = Clock::now();
  const auto report = [&](bool force) {
    const auto now = Clock::now();
    if (!progress || (!force && now - last_report < std::chrono::milliseconds(100))) return;
    last_report = now;
    prog.seconds = std::chrono::duration<double>(now - t0).count();
    progress(prog);
  };
  try {
    for (uint64_t next = 0;;) {
      Encoded e;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait_for(lock, std::chrono::milliseconds(100), [&] {
          return stop || done.count(next) || (reading_done && in_flight == 0);
        });
        if (stop) break;
        if (reading_done && in_flight == 0) break;
        const auto it = done.find(next);
        if (it == done.end()) {
          lock.unlock();
          report(false);
          continue;
        }
        e = std::move(it->second);
        done.erase(it);
      }
      // Written outside the lock; the slot frees only after, bounding memory.
      sink.write(e);
      result.documents += e.doc_ends.size();
      result.tokens += e.tokens.size();
      result.bytes += e.bytes;
      result.repaired_documents += e.repaired;
      prog.bytes_done = result.bytes;
      prog.documents = result.documents;
      prog.tokens = result.tokens;
      ++next;
      {
        std::lock_guard<std::mutex> lock(mu);
        --in_flight;
        cv.notify_all();
      }
      report(false);
    }
  } catch (...) {
    fail(std::current_exception());
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    stop = true;
    cv.notify_all();
  }
  reader.join();
  for (auto& w : workers) w.join();
  if (failure) std::rethrow_exception(failure);

  sink.finish();
  result.shards = sink.shards();
  remove_stale_shards(opt.out_dir, opt.shard_prefix, result.shards);
  nlohmann::json manifest = {{"format", "zt-token-shards"},
                             {"version", kTokenShardVersion},
                             {"tokenizer", opt.tokenizer_name},
                             {"vocab_size", tok.vocab_size()},
                             {"token_bytes", sink.token_bytes()},
                             {"eos_id", eos ? nlohmann::json(*eos) : nlohmann::json()},
                             {"documents", result.documents},
                             {"tokens", result.tokens},
                             {"bytes", result.bytes},
                             {"shards", sink.entries()}};
  result.manifest = (fs::path(opt.out_dir) / (opt.shard_prefix + "_manifest.json")).string();
  const std::string text = manifest.dump(2) + "\n";
  io::AtomicFile out(result.manifest);
  out.append(text.data(), text.size());
  out.commit();
  result.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  prog.seconds = result.seconds;
  if (progress) progress(prog);
  return result;
}

}  // namespace zt::data
