#include <fstream>
#include <set>
#include <sstream>

#include "zt/comm/launcher.hpp"
#include "zt/core/error.hpp"

namespace zt::comm {

namespace {

std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t\r");
  if (a == std::string::npos) return "";
  const size_t b = s.find_last_not_of(" \t\r");
  return s.substr(a, b - a + 1);
}

}  // namespace

std::vector<HostSlots> parse_hostfile_text(const std::string& text, const std::string& source) {
  std::vector<HostSlots> hosts;
  std::set<std::string> seen;
  std::istringstream in(text);
  std::string raw;
  int number = 0;
  while (std::getline(in, raw)) {
    ++number;
    std::string line = raw;
    if (const size_t hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    line = trim(line);
    if (line.empty()) continue;
    std::istringstream fields(line);
    std::string host, slots, extra;
    fields >> host >> slots >> extra;
    const auto bad = [&](const std::string& why) {
      ZT_THROW("hostfile ", source, ":", number, ": '", trim(raw), "': ", why,
               " (each line is 'HOST slots=N', N a positive integer; '#' starts a comment)");
    };
    if (slots.empty()) bad("no slots= given");
    if (!extra.empty()) bad(str("unexpected '", extra, "' after the slots"));
    if (slots.rfind("slots=", 0) != 0) bad(str("'", slots, "' is not slots=N"));
    const std::string count = slots.substr(6);
    size_t used = 0;
    int n = 0;
    try {
      n = std::stoi(count, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (count.empty() || used != count.size() || n <= 0) bad(str("slot count '", count, "' is not a positive integer"));
    if (!seen.insert(host).second) bad(str("host '", host, "' is listed twice"));
    hosts.push_back({host, n});
  }
  ZT_CHECK(!hosts.empty(), "hostfile ", source, " lists no hosts");
  return hosts;
}

std::vector<HostSlots> parse_hostfile(const std::string& path) {
  std::ifstream in(path);
  ZT_CHECK(in.good(), "cannot read hostfile ", path);
  std::stringstream text;
  text << in.rdbuf();
  return parse_hostfile_text(text.str(), path);
}

}  // namespace zt::comm
