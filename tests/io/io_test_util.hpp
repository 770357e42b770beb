// Helpers for the io tests: a temporary folder removed on exit, and raw file writers for
// building malformed inputs byte by byte.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>

#include "zt/core/error.hpp"

namespace zt::io::test {

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("zt-io-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// An 8-byte little-endian length, the header text, then data.
inline std::string safetensors_bytes(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  return out + header + data;
}

// Runs f, expecting a zt::Error whose message contains every one of needles.
template <class F, class... Needles>
void expect_error(F&& f, const Needles&... needles) {
  try {
    f();
    ADD_FAILURE() << "expected a zt::Error";
  } catch (const zt::Error& e) {
    const std::string message = e.what();
    for (const std::string& needle : {std::string(needles)...}) {
      EXPECT_NE(message.find(needle), std::string::npos) << "message: " << message << "\nmissing: " << needle;
    }
  }
}

}  // namespace zt::io::test
