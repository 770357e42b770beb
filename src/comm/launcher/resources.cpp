// Which hosts and slots a launch uses, with DeepSpeed's rules (deepspeed/launcher/runner.py).
#include <algorithm>
#include <filesystem>
#include <sstream>

#include "device_info.hpp"
#include "zt/comm/launcher.hpp"
#include "zt/core/error.hpp"
#include "zt/core/log.hpp"

namespace zt::comm {

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream in(s);
  while (std::getline(in, part, sep)) parts.push_back(part);
  return parts;
}

int parse_slot(const std::string& text, const std::string& spec) {
  size_t used = 0;
  int slot = -1;
  try {
    slot = std::stoi(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  ZT_CHECK(!text.empty() && used == text.size() && slot >= 0, "'", spec, "': slot '", text,
           "' is not a non-negative integer (expected HOST[:SLOT[,SLOT...]][@HOST...])");
  return slot;
}

HostResources* find_host(Resources& r, const std::string& host) {
  for (auto& h : r)
    if (h.host == host) return &h;
  return nullptr;
}

}  // namespace

Resources resources_from_hostfile(const std::vector<HostSlots>& hosts) {
  Resources r;
  for (const auto& h : hosts) {
    HostResources hr{h.host, {}};
    for (int s = 0; s < h.slots; ++s) hr.slots.push_back(s);
    r.push_back(std::move(hr));
  }
  return r;
}

Resources filter_resources(const Resources& all, const std::string& include, const std::string& exclude) {
  ZT_CHECK(include.empty() || exclude.empty(), "--include and --exclude are mutually exclusive");
  if (include.empty() && exclude.empty()) return all;
  const bool including = !include.empty();
  const std::string& spec = including ? include : exclude;
  // Including starts from nothing and adds; excluding starts from everything and removes.
  Resources result = all;
  if (including)
    for (auto& h : result) h.slots.clear();
  for (const std::string& node : split(spec, '@')) {
    const size_t colon = node.find(':');
    const std::string host = node.substr(0, colon);
    const HostResources* available = nullptr;
    for (const auto& h : all)
      if (h.host == host) available = &h;
    ZT_CHECK(available != nullptr, "'", spec, "': host '", host, "' is not among the hosts (",
             [&] {
               std::string names;
               for (const auto& h : all) names += (names.empty() ? "" : ", ") + h.host;
               return names;
             }(),
             ")");
    HostResources* target = find_host(result, host);
    if (colon == std::string::npos) {  // the whole host
      target->slots = including ? available->slots : std::vector<int>{};
      continue;
    }
    for (const std::string& text : split(node.substr(colon + 1), ',')) {
      const int slot = parse_slot(text, spec);
      ZT_CHECK(std::find(available->slots.begin(), available->slots.end(), slot) != available->slots.end(), "'", spec,
               "': host '", host, "' has no slot ", slot);
      auto& slots = target->slots;
      const auto it = std::find(slots.begin(), slots.end(), slot);
      if (including && it == slots.end()) slots.push_back(slot);
      if (!including && it != slots.end()) slots.erase(it);
    }
  }
  Resources kept;
  for (auto& h : result) {
    std::sort(h.slots.begin(), h.slots.end());
    if (!h.slots.empty()) kept.push_back(h);
  }
  ZT_CHECK(!kept.empty(), "'", spec, "' leaves no slots to run on");
  return kept;
}

Resources resolve_resources(const LaunchOptions& options) {
  const bool filtered = !options.include.empty() || !options.exclude.empty();
  ZT_CHECK(!(filtered && (options.num_nodes > 0 || options.num_procs > 0)),
           "--num_nodes/--num_gpus cannot be combined with --include/--exclude (as in DeepSpeed)");
  ZT_CHECK(options.num_procs == -1 || options.num_procs > 0, "--num_gpus/--num_procs must be positive, got ",
           options.num_procs);
  ZT_CHECK(options.num_nodes == -1 || options.num_nodes > 0, "--num_nodes must be positive, got ", options.num_nodes);

  std::string hostfile = options.hostfile;
  if (hostfile.empty() && std::filesystem::exists("/job/hostfile")) hostfile = "/job/hostfile";  // DeepSpeed's default
  Resources all;
  if (!hostfile.empty()) {
    all = resources_from_hostfile(parse_hostfile(hostfile));
  } else {
    ZT_CHECK(options.num_nodes <= 1, "--num_nodes ", options.num_nodes, " needs a --hostfile listing the hosts");
    // One host: every GPU, or as many processes as asked for (CPU ranks may outnumber cores).
    int n = options.num_procs > 0 ? options.num_procs : local_cuda_device_count();
    if (n <= 0) n = 1;
    HostResources local{"localhost", {}};
    for (int s = 0; s < n; ++s) local.slots.push_back(s);
    all.push_back(std::move(local));
    if (!filtered) return all;
  }

  Resources r = filter_resources(all, options.include, options.exclude);
  if (options.num_nodes > 0) {
    ZT_CHECK(options.num_nodes <= int(r.size()), "--num_nodes ", options.num_nodes, " but the hostfile ", hostfile,
             " lists ", r.size(), " hosts");
    r.resize(size_t(options.num_nodes));
  }
  if (options.num_procs > 0 && !hostfile.empty()) {
    for (auto& h : r) {
      ZT_CHECK(options.num_procs <= int(h.slots.size()), "--num_gpus ", options.num_procs, " but host '", h.host,
               "' has ", h.slots.size(), " slots in ", hostfile);
      h.slots.resize(size_t(options.num_procs));
    }
  }
  return r;
}

}  // namespace zt::comm
