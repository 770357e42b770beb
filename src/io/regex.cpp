#define PCRE2_CODE_UNIT_WIDTH 8
#include "io/regex.hpp"

#include <pcre2.h>

#include "zt/core/error.hpp"

namespace zt::io {
namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof buffer);
  return reinterpret_cast<const char*>(buffer);
}

// Match data holds the output vector; one per thread keeps find_all safe to call from many
// threads on one Regex (the compiled code itself is read-only).
struct ThreadMatchData {
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  ~ThreadMatchData() { pcre2_match_data_free(data); }
};

pcre2_match_data* thread_match_data() {
  thread_local ThreadMatchData m;
  return m.data;
}

}  // namespace

Regex::Regex(const std::string& pattern, bool literal, const std::string& origin) : pattern_(pattern) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  const uint32_t options = literal ? PCRE2_UTF | PCRE2_LITERAL : PCRE2_UTF | PCRE2_UCP;  // UCP is refused with LITERAL
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), options, &error,
                                   &offset, nullptr);
  ZT_CHECK(code != nullptr, origin, ": the pre-tokenizer pattern /", pattern, "/ does not compile at offset ", offset,
           ": ", pcre2_message(error));
  // JIT is an optimization: where it is unavailable, matching falls back to the interpreter.
  jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  code_ = code;
}

Regex::~Regex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

void Regex::find_all(std::string_view subject, std::vector<std::pair<size_t, size_t>>& out) const {
  auto* code = static_cast<pcre2_code*>(code_);
  pcre2_match_data* md = thread_match_data();
  const auto* s = reinterpret_cast<PCRE2_SPTR>(subject.data());
  size_t start = 0;
  while (start <= subject.size()) {
    // The JIT entry point skips the interpreter's per-call option checks: pieces are short, so
    // the call overhead is a large share of the matching time.
    const int rc = jit_ ? pcre2_jit_match(code, s, subject.size(), start, 0, md, nullptr)
                        : pcre2_match(code, s, subject.size(), start, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    ZT_CHECK(rc >= 0, "matching /", pattern_, "/ failed: ", pcre2_message(rc));
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t b = ov[0], e = ov[1];
    if (e > b) {
      out.emplace_back(b, e);
      start = e;
    } else {
      // An empty match: step over one character, as an iterator over matches does.
      if (b >= subject.size()) break;
      size_t next = b + 1;
      while (next < subject.size() && (static_cast<uint8_t>(subject[next]) & 0xc0) == 0x80) ++next;
      start = next;
    }
  }
}

}  // namespace zt::io
