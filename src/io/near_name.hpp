// The nearest name in a set, for "did you mean" hints in error messages.
#pragma once

#include <string>
#include <vector>

namespace zt::io {

// Levenshtein distance between a and b.
size_t edit_distance(const std::string& a, const std::string& b);

// The candidate nearest to name, or "" when none is within a third of name's length
// (a hint that is far off misleads more than it helps).
std::string near_name(const std::string& name, const std::vector<std::string>& candidates);

// " (did you mean 'x'?)" or "" when nothing is near.
std::string did_you_mean(const std::string& name, const std::vector<std::string>& candidates);

}  // namespace zt::io
