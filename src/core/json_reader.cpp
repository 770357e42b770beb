#include "zt/core/json_reader.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

#include "io/near_name.hpp"
#include "zt/core/error.hpp"

namespace zt {

namespace {

std::string number_str(double v) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return s;
}

// Whether a section asks for nothing: {"enabled": false}, or only false/null/empty values.
bool inert_section(const nlohmann::json& v) {
  if (v.is_null() || v == false) return true;
  if (!v.is_object()) return false;
  if (auto it = v.find("enabled"); it != v.end() && *it == false) return true;
  for (const auto& [k, x] : v.items()) {
    const bool empty = x.is_null() || x == false || ((x.is_object() || x.is_array() || x.is_string()) && x.empty());
    if (!empty && !inert_section(x)) return false;
  }
  return true;
}

std::vector<std::string> words(const std::string& key) {
  std::vector<std::string> out;
  std::string w;
  for (char ch : key + "_") {
    if (ch == '_' || ch == '-') {
      if (!w.empty()) out.push_back(lower(w));
      w.clear();
    } else {
      w += ch;
    }
  }
  return out;
}

// The known key nearest to an unknown one: a key holding all of its words ("warmup_steps" ->
// "warmup_num_steps", "stage3_prefetch_bucket" -> "stage3_prefetch_bucket_size") first, the one
// with the fewest extra words; otherwise the nearest by edit distance.
std::string nearest_key(const std::string& unknown, const std::vector<std::string>& known) {
  const std::vector<std::string> want = words(unknown);
  std::string best;
  size_t best_extra = SIZE_MAX;
  for (const std::string& k : known) {
    const std::vector<std::string> have = words(k);
    const bool covers = !want.empty() && std::all_of(want.begin(), want.end(), [&](const std::string& w) {
      return std::find(have.begin(), have.end(), w) != have.end();
    });
    if (covers && have.size() >= want.size() && have.size() - want.size() < best_extra) {
      best_extra = have.size() - want.size();
      best = k;
    }
  }
  if (!best.empty() && best != unknown) return " (did you mean '" + best + "'?)";
  // A short key is near too many others; allow one edit per three characters.
  const std::string near = io::near_name(unknown, known);
  if (near.empty() || io::edit_distance(unknown, near) > std::max<size_t>(1, unknown.size() / 3)) return "";
  return " (did you mean '" + near + "'?)";
}

const nlohmann::json& empty_object() {
  static const nlohmann::json empty = nlohmann::json::object();
  return empty;
}

}  // namespace

std::string json_value_str(const nlohmann::json& v) {
  std::string s = v.dump();
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

bool Bounds::contains(double v) const {
  if (std::isnan(v)) return false;
  const bool lo_ok = lo_open ? v > lo : v >= lo;
  const bool hi_ok = hi_open ? v < hi : v <= hi;
  return lo_ok && hi_ok;
}

std::string Bounds::describe(bool integer) const {
  const std::string kind = integer ? "an integer" : "a number";
  const bool has_lo = !std::isinf(lo), has_hi = !std::isinf(hi);
  if (has_lo && has_hi)
    return kind + " in " + (lo_open ? "(" : "[") + number_str(lo) + ", " + number_str(hi) + (hi_open ? ")" : "]");
  if (has_lo) return kind + (lo_open ? " > " : " >= ") + number_str(lo);
  if (has_hi) return kind + (hi_open ? " < " : " <= ") + number_str(hi);
  return kind;
}

JsonReader::JsonReader(const nlohmann::json& j, std::string path, std::string source)
    : j_(j.is_null() ? empty_object() : j), path_(std::move(path)), source_(std::move(source)) {
  if (!j_.is_object()) {
    if (j_.is_string() && j_.get<std::string>() == "auto")
      ZT_THROW(source_, ": ", path_.empty() ? "the config" : path_,
               " = \"auto\": \"auto\" is a Hugging Face Trainer placeholder that the Trainer replaces before DeepSpeed "
               "reads the config; write the value itself");
    ZT_THROW(source_, ": ", path_.empty() ? "the config" : path_, " = ", json_value_str(j_),
             ": expected an object {\"key\": value, ...}");
  }
}

std::string JsonReader::key_path(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

void JsonReader::fail(const std::string& key, const std::string& what) const {
  auto it = j_.find(key);
  if (it != j_.end()) ZT_THROW(source_, ": ", key_path(key), " = ", json_value_str(*it), ": ", what);
  ZT_THROW(source_, ": ", key_path(key), ": ", what);
}

void JsonReader::type_error(const std::string& key, const char* expected) const { fail(key, str("expected ", expected)); }

const nlohmann::json* JsonReader::lookup(const std::string& key) {
  known_.insert(key);
  auto it = j_.find(key);
  if (it == j_.end() || it->is_null()) return nullptr;
  if (it->is_string() && it->get<std::string>() == "auto")
    fail(key,
         "\"auto\" is a Hugging Face Trainer placeholder that the Trainer replaces before DeepSpeed reads the config; "
         "write the value itself");
  return &*it;
}

bool JsonReader::has(const std::string& key) { return lookup(key) != nullptr; }

const nlohmann::json* JsonReader::find(const std::string& key) { return lookup(key); }

bool JsonReader::get_bool(const std::string& key, bool fallback) {
  const nlohmann::json* v = lookup(key);
  if (!v) return fallback;
  if (!v->is_boolean()) type_error(key, "true or false");
  return v->get<bool>();
}

std::optional<int64_t> JsonReader::get_optional_int(const std::string& key, Bounds bounds) {
  const nlohmann::json* v = lookup(key);
  if (!v) return std::nullopt;
  int64_t out = 0;
  if (v->is_number_integer()) {
    out = v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(INT64_MAX) ? INT64_MAX : v->get<int64_t>();
  } else if (v->is_number_float()) {
    const double d = v->get<double>();
    if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9.2e18) type_error(key, bounds.describe(true).c_str());
    out = int64_t(d);
  } else {
    type_error(key, bounds.describe(true).c_str());
  }
  if (!bounds.contains(double(out))) fail(key, "expected " + bounds.describe(true));
  return out;
}

int64_t JsonReader::get_int(const std::string& key, int64_t fallback, Bounds bounds) {
  return get_optional_int(key, bounds).value_or(fallback);
}

std::optional<double> JsonReader::get_optional_number(const std::string& key, Bounds bounds) {
  const nlohmann::json* v = lookup(key);
  if (!v) return std::nullopt;
  if (!v->is_number()) type_error(key, bounds.describe(false).c_str());
  const double d = v->get<double>();
  if (!bounds.contains(d)) fail(key, "expected " + bounds.describe(false));
  return d;
}

double JsonReader::get_number(const std::string& key, double fallback, Bounds bounds) {
  return get_optional_number(key, bounds).value_or(fallback);
}

std::string JsonReader::get_string(const std::string& key, const std::string& fallback) {
  const nlohmann::json* v = lookup(key);
  if (!v) return fallback;
  if (!v->is_string()) type_error(key, "a string");
  return v->get<std::string>();
}

std::string JsonReader::get_choice(const std::string& key, const std::string& fallback,
                                   const std::vector<std::string>& choices) {
  std::string all;
  for (const std::string& c : choices) all += (all.empty() ? "" : ", ") + ("\"" + c + "\"");
  const nlohmann::json* v = lookup(key);
  if (!v) return fallback;
  if (!v->is_string()) type_error(key, ("one of " + all).c_str());
  const std::string s = v->get<std::string>();
  for (const std::string& c : choices)
    if (lower(c) == lower(s)) return c;
  fail(key, "expected one of " + all + io::did_you_mean(s, choices));
}

std::pair<double, double> JsonReader::get_pair(const std::string& key, std::pair<double, double> fallback,
                                               Bounds bounds) {
  const nlohmann::json* v = lookup(key);
  if (!v) return fallback;
  const std::string expected = "two numbers [a, b], each " + bounds.describe(false).substr(2);
  if (!v->is_array() || v->size() != 2 || !(*v)[0].is_number() || !(*v)[1].is_number()) type_error(key, expected.c_str());
  const double a = (*v)[0].get<double>(), b = (*v)[1].get<double>();
  if (!bounds.contains(a) || !bounds.contains(b)) fail(key, "expected " + expected);
  return {a, b};
}

std::vector<std::string> JsonReader::get_string_list(const std::string& key) {
  const nlohmann::json* v = lookup(key);
  std::vector<std::string> out;
  if (!v) return out;
  if (!v->is_array()) type_error(key, "a list of strings");
  for (const auto& x : *v) {
    if (!x.is_string()) type_error(key, "a list of strings");
    out.push_back(x.get<std::string>());
  }
  return out;
}

JsonReader JsonReader::child(const std::string& key) {
  const nlohmann::json* v = lookup(key);
  return JsonReader(v ? *v : empty_object(), key_path(key), source_);
}

void JsonReader::unsupported(const std::string& key, const nlohmann::json& inert, const std::string& hint) {
  known_.insert(key);
  unsupported_.insert(key);
  auto it = j_.find(key);
  if (it == j_.end() || *it == inert || it->is_null()) return;
  fail(key, str("a DeepSpeed setting that this version of zt does not support (its default is ", json_value_str(inert),
                "; remove the key or set it to that)", hint.empty() ? "" : "; ", hint));
}

void JsonReader::unsupported_section(const std::string& key, const std::string& hint) {
  known_.insert(key);
  unsupported_.insert(key);
  auto it = j_.find(key);
  if (it == j_.end() || inert_section(*it)) return;
  fail(key, str("a DeepSpeed feature that this version of zt does not support (remove the section or set "
                "\"enabled\": false)",
                hint.empty() ? "" : "; ", hint));
}

void JsonReader::reject(const std::string& key, const std::string& why) {
  known_.insert(key);
  if (j_.contains(key)) fail(key, why);
}

void JsonReader::finish() const {
  std::vector<std::string> unknown;
  for (const auto& [k, v] : j_.items())
    if (!known_.count(k)) unknown.push_back(k);
  if (unknown.empty()) return;
  // Suggest and list the settings that work, not the DeepSpeed ones that are only recognized.
  std::vector<std::string> candidates;
  for (const std::string& k : known_)
    if (!unsupported_.count(k)) candidates.push_back(k);
  const std::string hint = nearest_key(unknown[0], candidates);
  std::string msg = str(source_, ": unknown key '", key_path(unknown[0]), "'", hint);
  if (hint.empty()) {
    std::string all;
    for (const std::string& c : candidates) all += (all.empty() ? "" : ", ") + c;
    msg += str("; the keys ", path_.empty() ? "at the top level" : "of " + path_, " are: ", all);
  }
  if (unknown.size() > 1) {
    msg += "; also unknown:";
    for (size_t i = 1; i < unknown.size(); ++i) msg += " '" + key_path(unknown[i]) + "'";
  }
  ZT_THROW(msg);
}

}  // namespace zt
