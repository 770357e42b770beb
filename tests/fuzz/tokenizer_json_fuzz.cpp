// libFuzzer target: tokenizer.json parsing. Any input must load or end in a zt::Error; what
// loads must encode and decode a few strings without crashing.
#include <cstddef>
#include <cstdint>
#include <string>

#include "zt/core/error.hpp"
#include "zt/io/bpe_tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const auto tok = zt::io::BpeTokenizer::from_json(text, "fuzz.json");
    for (const char* s : {"Hello world", "  x\n\n12345 'll", "naïve 東京 🚀", ""}) {
      const auto ids = tok->encode(s);
      (void)tok->decode(ids);
    }
    (void)tok->vocab_size();
  } catch (const zt::Error&) {
  }
  return 0;
}
