// Reading a JSON object as settings. Each value is checked for its type and range, and each failure
// names the key's full path ("zero_optimization.offload_optimizer.device"), the value, and what was
// expected. finish() turns every key that was never asked about into an error naming the nearest
// valid key, so that nothing in a config is silently ignored.
//
// Shared rules: a JSON null reads as absent (the default applies); the string "auto" (Hugging Face
// Trainer's placeholder, filled in before DeepSpeed sees the config) is an error wherever it
// appears; integer settings accept integral floats (5e8).
#pragma once

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace zt {

// An interval for a number; the message says it as "a number > 0", "an integer in [0, 3]".
struct Bounds {
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
  bool lo_open = false, hi_open = false;

  static Bounds any() { return {}; }
  static Bounds at_least(double v) { return {v, std::numeric_limits<double>::infinity(), false, false}; }
  static Bounds above(double v) { return {v, std::numeric_limits<double>::infinity(), true, false}; }
  static Bounds between(double a, double b) { return {a, b, false, false}; }  // closed
  static Bounds unit_open_right() { return {0.0, 1.0, false, true}; }          // [0, 1)
  bool contains(double v) const;
  std::string describe(bool integer) const;
};

class JsonReader {
 public:
  // j must be an object (else an error naming path); path is its key path ("" for the whole
  // document); source names the file in every message ("ds_config.json", "config string").
  JsonReader(const nlohmann::json& j, std::string path, std::string source);

  // Whether key is present and not null; marks it known.
  bool has(const std::string& key);
  // The raw value (marked known), or nullptr when absent or null; "auto" is an error.
  const nlohmann::json* find(const std::string& key);

  bool get_bool(const std::string& key, bool fallback);
  int64_t get_int(const std::string& key, int64_t fallback, Bounds bounds = Bounds::any());
  std::optional<int64_t> get_optional_int(const std::string& key, Bounds bounds = Bounds::any());
  double get_number(const std::string& key, double fallback, Bounds bounds = Bounds::any());
  std::optional<double> get_optional_number(const std::string& key, Bounds bounds = Bounds::any());
  std::string get_string(const std::string& key, const std::string& fallback);
  // One of choices, matched ignoring case; returns the choice as spelled in choices.
  std::string get_choice(const std::string& key, const std::string& fallback, const std::vector<std::string>& choices);
  // A two-element array of numbers, each within bounds (Adam's betas).
  std::pair<double, double> get_pair(const std::string& key, std::pair<double, double> fallback,
                                     Bounds bounds = Bounds::any());
  std::vector<std::string> get_string_list(const std::string& key);

  // The object under key (an empty object when absent or null); an error when not an object.
  JsonReader child(const std::string& key);

  // A DeepSpeed setting this version does not implement: accepted only when its value asks for
  // nothing, i.e. equals inert (DeepSpeed's default); otherwise an error that says so. hint, when
  // given, is appended ("use gradient_clipping instead").
  void unsupported(const std::string& key, const nlohmann::json& inert, const std::string& hint = "");
  // A DeepSpeed section this version does not implement: accepted only when it asks for nothing
  // ({"enabled": false}, or every value false, null or empty); otherwise an error.
  void unsupported_section(const std::string& key, const std::string& hint = "");
  // Any value under key is an error with this explanation.
  void reject(const std::string& key, const std::string& why);

  // Errors on the keys that were never asked about, with the nearest known key.
  void finish() const;

  const std::string& path() const { return path_; }
  const std::string& source() const { return source_; }
  std::string key_path(const std::string& key) const;  // "zero_optimization.stage"
  // Throws "<source>: <path.key> = <value>: <what>" (the value only when present).
  [[noreturn]] void fail(const std::string& key, const std::string& what) const;

 private:
  const nlohmann::json* lookup(const std::string& key);  // marks known; null for absent/null; checks "auto"
  [[noreturn]] void type_error(const std::string& key, const char* expected) const;

  const nlohmann::json& j_;
  std::string path_, source_;
  std::set<std::string> known_, unsupported_;
};

// A JSON value as it would be written, cut to a readable length ("\"two\"", "[0.9, 0.999]").
std::string json_value_str(const nlohmann::json& v);

}  // namespace zt
