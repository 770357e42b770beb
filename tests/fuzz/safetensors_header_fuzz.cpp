// libFuzzer target: the safetensors header parser on arbitrary file bytes. Any input must end
// in a parsed header or a zt::Error; a crash, a leak or undefined behaviour is a bug. A header
// that parses must describe ranges inside the input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "zt/core/error.hpp"
#include "zt/io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view file(reinterpret_cast<const char*>(data), size);
  try {
    const zt::io::SafetensorsHeader h = zt::io::parse_safetensors_header(file, "fuzz.safetensors");
    for (const zt::io::TensorInfo& t : h.tensors) {
      if (t.begin > t.end || h.data_offset + t.end > size) std::abort();
    }
  } catch (const zt::Error&) {
  }
  return 0;
}
