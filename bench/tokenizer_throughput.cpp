// Tokenizer encode throughput on a generated corpus (about 100 MB of English-like prose with
// numbers, punctuation, code and some non-ASCII words, split into documents of 1-4 KB),
// with 1 and 2 threads, one JSON line per configuration. bench/tokenizer_peer.py generates
// the same text (the same splitmix64 stream and word table) and times Hugging Face's
// tokenizers on it.
//
//   bench_tokenizer_throughput [--mb 100] [--threads 1,2] [--tokenizer PATH]... [--save-text FILE]
// Default tokenizers: the fixtures' tok-bpe (byte-level BPE) and tok-sp (SentencePiece).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "zt/core/error.hpp"
#include "zt/io/tokenizer.hpp"

namespace {

struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint64_t below(uint64_t n) { return next() % n; }
};

// Keep in step with WORDS in tokenizer_peer.py.
const char* const kWords[] = {
    "the", "of", "and", "to", "a", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on", "not",
    "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had", "they", "you", "were",
    "their", "one", "all", "we", "can", "her", "has", "there", "been", "if", "more", "when", "will", "would", "who",
    "so", "no", "model", "training", "gradient", "tensor", "optimizer", "learning", "rate", "batch", "sequence",
    "attention", "layer", "parameters", "memory", "device", "shard", "checkpoint", "tokenizer", "vocabulary",
    "distributed", "communication", "bandwidth", "latency", "throughput", "precision", "accumulation", "language",
    "transformer", "embedding", "normalization", "residual", "activation", "backward", "forward", "loss", "step",
    "world", "people", "time", "government", "children", "history", "university", "information", "development",
    "experience", "important", "different", "following", "something", "between", "because", "through", "during",
    "without", "however", "another", "against", "already", "although", "I'm", "don't", "it's", "we'll", "they've",
    "def", "return", "self", "x", "y", "i", "j", "for", "while", "None", "True", "False", "import", "numpy", "np",
    "café", "naïve", "über", "résumé", "東京", "日本語", "Москва", "данные", "αβγ", "😀", "🚀", "→", "—",
};
constexpr size_t kWordCount = sizeof(kWords) / sizeof(kWords[0]);

std::vector<std::string> generate_documents(size_t target_bytes) {
  // Zipf-like: word i has weight floor(1e6 / (i + 1)), integer arithmetic so both generators agree.
  std::vector<uint64_t> cumulative(kWordCount);
  uint64_t total = 0;
  for (size_t i = 0; i < kWordCount; ++i) cumulative[i] = total += 1000000 / (i + 1);
  SplitMix64 rng{20240601};
  std::vector<std::string> docs;
  size_t bytes = 0;
  while (bytes < target_bytes) {
    std::string doc;
    const uint64_t doc_bytes = 1000 + rng.below(3000);
    while (doc.size() < doc_bytes) {
      const uint64_t words = 5 + rng.below(16);
      for (uint64_t w = 0; w < words; ++w) {
        const uint64_t kind = rng.below(100);
        std::string word;
        if (kind < 4) {
          word = std::to_string(rng.below(100000));
        } else if (kind < 6) {
          word = '(';
          word += kWords[rng.below(kWordCount)];
          word += ')';
        } else {
          const uint64_t r = rng.below(total);
          word = kWords[std::upper_bound(cumulative.begin(), cumulative.end(), r) - cumulative.begin()];
        }
        if (w == 0 && word[0] >= 'a' && word[0] <= 'z') word[0] = char(word[0] - 'a' + 'A');
        if (w > 0) doc += ' ';
        doc += word;
        if (w + 1 < words && rng.below(10) == 0) doc += ',';
      }
      const uint64_t end = rng.below(20);
      doc += end == 0 ? "?" : end == 1 ? "!" : ".";
      doc += rng.below(6) == 0 ? "\n\n" : " ";
    }
    bytes += doc.size();
    docs.push_back(std::move(doc));
  }
  return docs;
}

struct Run {
  double seconds;
  uint64_t tokens;
};

Run encode_all(const zt::io::Tokenizer& tok, const std::vector<std::string>& docs, int threads) {
  std::atomic<size_t> next{0};
  std::atomic<uint64_t> tokens{0};
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      std::vector<int32_t> ids;
      uint64_t count = 0;
      for (;;) {
        const size_t begin = next.fetch_add(64);
        if (begin >= docs.size()) break;
        for (size_t i = begin; i < std::min(begin + 64, docs.size()); ++i) {
          ids.clear();
          tok.encode_into(docs[i], ids);
          count += ids.size();
        }
      }
      tokens += count;
    });
  }
  for (auto& th : pool) th.join();
  return {std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), tokens.load()};
}

std::vector<int> parse_threads(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) out.push_back(std::stoi(item));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    double mb = 100;
    std::vector<int> threads = {1, 2};
    std::vector<std::string> tokenizers;
    std::string save_text;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      ZT_CHECK(i + 1 < argc, "option ", a, " needs a value");
      const std::string v = argv[++i];
      if (a == "--mb") mb = std::stod(v);
      else if (a == "--threads") threads = parse_threads(v);
      else if (a == "--tokenizer") tokenizers.push_back(v);
      else if (a == "--save-text") save_text = v;
      else ZT_THROW("unknown option ", a, " (expected --mb, --threads, --tokenizer, --save-text)");
    }
    if (tokenizers.empty()) {
      const char* env = std::getenv("ZT_FIXTURES_DIR");
      const std::filesystem::path fixtures =
          env ? std::filesystem::path(env)
              : std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() / "shared" / "fixtures";
      tokenizers = {(fixtures / "hf" / "tok-bpe").string(), (fixtures / "hf" / "tok-sp").string()};
    }
    const auto docs = generate_documents(size_t(mb * 1e6));
    uint64_t bytes = 0;
    for (const auto& d : docs) bytes += d.size();
    if (!save_text.empty()) {
      // Documents separated by a form feed, which the generator never writes.
      std::ofstream out(save_text, std::ios::binary);
      for (const auto& d : docs) out << d << '\f';
      ZT_CHECK(out.good(), "cannot write ", save_text);
    }
    for (const std::string& path : tokenizers) {
      const auto tok = zt::io::load_tokenizer(path);
      encode_all(*tok, std::vector<std::string>(docs.begin(), docs.begin() + std::min<size_t>(docs.size(), 200)), 1);
      for (int t : threads) {
        const Run r = encode_all(*tok, docs, t);
        std::printf(
            "{\"bench\": \"tokenizer_throughput\", \"impl\": \"zt\", \"tokenizer\": \"%s\", \"kind\": \"%s\", "
            "\"threads\": %d, \"mb\": %.2f, \"documents\": %zu, \"tokens\": %llu, \"seconds\": %.3f, "
            "\"mb_per_s\": %.2f, \"tokens_per_s\": %.0f}\n",
            std::filesystem::path(path).filename().string().c_str(), tok->kind().c_str(), t, double(bytes) / 1e6,
            docs.size(), static_cast<unsigned long long>(r.tokens), r.seconds, double(bytes) / 1e6 / r.seconds,
            double(r.tokens) / r.seconds);
        std::fflush(stdout);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_tokenizer_throughput: %s\n", e.what());
    return 1;
  }
  return 0;
}
