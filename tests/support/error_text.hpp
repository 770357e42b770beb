// The message of the zt::Error a piece of code throws, for tests that check what an error says.
#pragma once

#include <functional>
#include <string>

#include "zt/core/error.hpp"

namespace zt::test {

// f's zt::Error message (what()), or "(no error)" when f throws none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace zt::test
