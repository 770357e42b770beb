#include "unicode_normalizer.hpp"

#include <unicode/normalizer2.h>
#include <unicode/unistr.h>

#include "zt/core/error.hpp"

namespace zt::io {

std::string nfc_normalize(std::string_view text) {
  bool ascii = true;
  for (unsigned char c : text) ascii = ascii && c < 0x80;
  if (ascii) return std::string(text);
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(status);
  ZT_CHECK(U_SUCCESS(status), "Unicode NFC normalizer unavailable: ", u_errorName(status));
  const icu::UnicodeString input = icu::UnicodeString::fromUTF8(icu::StringPiece(text.data(), int32_t(text.size())));
  const icu::UnicodeString normalized = nfc->normalize(input, status);
  ZT_CHECK(U_SUCCESS(status), "Unicode NFC normalization failed: ", u_errorName(status));
  std::string out;
  normalized.toUTF8String(out);
  return out;
}

}  // namespace zt::io
