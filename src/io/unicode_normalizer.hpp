// Unicode normalization for tokenizers whose tokenizer.json asks for it (Qwen2's NFC), through
// ICU.
#pragma once

#include <string>
#include <string_view>

namespace zt::io {

// The NFC form of valid UTF-8 text (ASCII comes back unchanged without a copy into ICU).
std::string nfc_normalize(std::string_view text);

}  // namespace zt::io
