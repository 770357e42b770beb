#include "zt/comm/work.hpp"

#include <exception>

namespace zt::comm {

void wait_all(const std::vector<Work>& works) {
  std::exception_ptr first;
  for (const Work& w : works) {
    try {
      w.wait();
    } catch (...) {
      if (!first) first = std::current_exception();
    }
  }
  if (first) std::rethrow_exception(first);
}

}  // namespace zt::comm
