// libFuzzer target: encoding arbitrary text with the fixture's byte-level BPE tokenizer.
// Invalid UTF-8 must be a zt::Error; valid text must decode back to itself exactly (byte-level
// BPE loses nothing), with every id inside the vocabulary.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "zt/core/error.hpp"
#include "zt/io/tokenizer.hpp"

#ifndef ZT_FIXTURES_DIR
#error "build with -DZT_FIXTURES_DIR=..."
#endif

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::unique_ptr<zt::io::Tokenizer> tok = zt::io::load_tokenizer(ZT_FIXTURES_DIR "/hf/tok-bpe");
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<int32_t> ids;
  try {
    ids = tok->encode(text);
  } catch (const zt::Error&) {
    return 0;  // invalid UTF-8
  }
  for (int32_t id : ids) {
    if (id < 0 || id >= tok->vocab_size()) std::abort();
  }
  if (tok->decode(ids) != text) std::abort();
  return 0;
}
