// Discovery: which units the configuration names (patterns and explicit units), read from systemd in chunks with
// many calls in flight, each chunk's services first, then the sockets that trigger them. Asynchronous: the loop
// answers idlepoolctl and scrapes while a thousand units are read. A pool enters the model as soon as its service is
// read (systemd's signals about it are taken from then on); its sockets are registered with the probe once the
// discovery is through, in one socket dump, and its idle window starts then.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "pool_manager.h"

namespace idlepool::daemon {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

constexpr size_t kChunk = 50;

}  // namespace

bool PoolManager::manages(const std::string& unit) const {
  if (std::find(config_.units.begin(), config_.units.end(), unit) != config_.units.end()) return true;
  if (!ends_with(unit, ".service")) return false;
  return std::any_of(config_.unit_patterns.begin(), config_.unit_patterns.end(),
                     [&](const std::string& p) { return unit_matches(p, unit); });
}

void PoolManager::discover(std::function<void()> done) {
  if (done) discovery_.waiting.push_back(std::move(done));
  if (discovery_.running) {
    discovery_.again = true;
    return;
  }
  auto waiting = std::move(discovery_.waiting);
  discovery_ = Discovery{};
  discovery_.running = true;
  discovery_.waiting = std::move(waiting);
  discovery_.started = std::chrono::steady_clock::now();
  list_wanted();
}

void PoolManager::list_wanted() {
  auto plan = [this](const std::vector<std::string>& listed) {
    std::set<std::string> wanted(config_.units.begin(), config_.units.end());
    for (const auto& n : listed)
      if (ends_with(n, ".service")) wanted.insert(n);
    discovery_.wanted.assign(wanted.begin(), wanted.end());
    for (const auto& unit : wanted)
      if (!pools_.count(unit)) discovery_.fresh.push_back(unit);
    discovery_.total = discovery_.fresh.size();
    read_next_chunk();
  };
  if (config_.unit_patterns.empty()) return plan({});
  deps_.systemd.list_units(config_.unit_patterns, [this, plan](Result<std::vector<std::string>> names) {
    if (!names) {
      ++stats_.bus_errors;
      spdlog::warn("cannot list units: {}, keeping the pools known so far", names.error().message);
      discovery_.wanted.clear();
      for (const auto& [unit, pool] : pools_) discovery_.wanted.push_back(unit);  // forget nothing
      return finish_discovery();
    }
    plan(*names);
  });
}

void PoolManager::read_next_chunk() {
  if (discovery_.done >= discovery_.fresh.size()) return finish_discovery();
  auto first = discovery_.fresh.begin() + static_cast<std::ptrdiff_t>(discovery_.done);
  std::vector<std::string> chunk(
      first, first + static_cast<std::ptrdiff_t>(std::min(kChunk, discovery_.fresh.size() - discovery_.done)));
  for (const auto& unit : chunk) discovery_.reading[unit];
  deps_.systemd.read_services(chunk, [this, chunk](std::vector<Result<ServiceUnit>> services) {
    stats_.units_read += chunk.size();
    std::set<std::string> socket_set;
    for (const auto& svc : services)
      if (svc)
        for (const auto& t : svc->triggered_by)
          if (ends_with(t, ".socket")) socket_set.insert(t);
    std::vector<std::string> socket_names(socket_set.begin(), socket_set.end());
    // The services enter the model now, so that what systemd signals about them from here on is taken.
    std::vector<std::string> added = add_services(chunk, std::move(services));
    deps_.systemd.read_sockets(socket_names, [this, added, socket_names](std::vector<Result<SocketUnit>> sockets) {
      std::map<std::string, Result<SocketUnit>> read;
      for (size_t i = 0; i < socket_names.size() && i < sockets.size(); ++i)
        read.emplace(socket_names[i], std::move(sockets[i]));
      for (const auto& unit : added)
        if (auto it = pools_.find(unit); it != pools_.end()) set_sockets_from(it->second, read);
      discovery_.added.insert(discovery_.added.end(), added.begin(), added.end());
      discovery_.done += std::min(kChunk, discovery_.fresh.size() - discovery_.done);
      if (progress_ && discovery_.done < discovery_.total) progress_(discovery_.done, discovery_.total);
      read_next_chunk();
    });
  });
}

std::vector<std::string> PoolManager::add_services(const std::vector<std::string>& chunk,
                                                   std::vector<Result<ServiceUnit>> services) {
  std::vector<std::string> added;
  for (size_t i = 0; i < chunk.size(); ++i) {
    const std::string& unit = chunk[i];
    if (i >= services.size() || !services[i]) {
      spdlog::error("pool {}: {}, ignoring", unit, i < services.size() ? services[i].error().message : "not read");
      continue;
    }
    if (pools_.count(unit)) continue;  // a discovery that overlapped another
    Pool pool;
    pool.unit = unit;
    pool.stall.worker_gone(deps_.now());          // as good as: look for a stall once, stall_timeout from now
    if (auto learnt = restored_.extract(unit)) {  // what it learnt before this daemon's restart
      pool.rhythm.histogram = learnt.mapped().silences;
      pool.rhythm.recent = learnt.mapped().recent;
    }
    auto [it, inserted] = pools_.emplace(unit, std::move(pool));
    apply_service(it->second, std::move(*services[i]));
    added.push_back(unit);
  }
  // What systemd signalled while the chunk was read.
  std::vector<std::string> reread;
  for (const auto& unit : chunk) {
    auto early = discovery_.reading.find(unit);
    if (early == discovery_.reading.end()) continue;
    auto patches = std::move(early->second);
    discovery_.reading.erase(early);
    if (!pools_.count(unit)) continue;
    apply_patches(pools_.at(unit), patches);
    if (discovery_.reread.erase(unit)) reread.push_back(unit);
  }
  if (!reread.empty()) read_services_of(reread);
  return added;
}

void PoolManager::set_sockets_from(Pool& pool, const std::map<std::string, Result<SocketUnit>>& read) {
  std::vector<SocketUnit> sockets;
  for (const auto& t : pool.service.triggered_by) {
    if (!ends_with(t, ".socket")) continue;
    auto it = read.find(t);
    if (it == read.end()) continue;
    if (!it->second) {
      ++stats_.bus_errors;
      spdlog::warn("{}: cannot read {}: {}, ignoring", pool.unit, t, it->second.error().message);
      continue;
    }
    sockets.push_back(*it->second);
  }
  set_sockets(pool, std::move(sockets));
}

void PoolManager::finish_discovery() {
  auto read_done = std::chrono::steady_clock::now();
  std::vector<Pool*> fresh;
  for (const auto& unit : discovery_.added)
    if (auto it = pools_.find(unit); it != pools_.end()) fresh.push_back(&it->second);
  register_listeners(fresh);
  // Judged once every pool is known: a pool must not listen on another pool's socket either.
  for (Pool* p : fresh) {
    assess_safety(*p);
    std::string addresses;
    for (const auto& l : p->listeners) addresses += (addresses.empty() ? "" : ", ") + l.address.to_string();
    spdlog::info("managing {} ({}, {}; sockets: {})", p->unit, p->kind, p->service.active_state,
                 addresses.empty() ? "none" : addresses);
  }
  auto seconds = [](auto d) { return std::chrono::duration<double>(d).count(); };
  if (!fresh.empty())
    spdlog::info("discovered {} new pools in {:.2f}s ({:.2f}s reading systemd, {:.2f}s registering their sockets)",
                 fresh.size(), seconds(std::chrono::steady_clock::now() - discovery_.started),
                 seconds(read_done - discovery_.started), seconds(std::chrono::steady_clock::now() - read_done));
  std::set<std::string> wanted(discovery_.wanted.begin(), discovery_.wanted.end());
  std::vector<std::string> gone;
  for (const auto& [unit, pool] : pools_)
    if (!wanted.count(unit)) gone.push_back(unit);
  for (const auto& unit : gone) {
    spdlog::info("no longer managing {}", unit);
    forget(unit);
  }
  dirty_ = true;
  bool again = discovery_.again;
  auto waiting = std::move(discovery_.waiting);
  discovery_.running = false;
  if (again) discover();  // asked for meanwhile: units may have come or gone since this one listed them
  for (auto& w : waiting) w();
}

void PoolManager::forget(const std::string& unit) {
  auto it = pools_.find(unit);
  if (it == pools_.end()) return;
  set_sockets(it->second, {});  // its paths leave the owners' map
  unregister_listeners(it->second);
  if (it->second.in_watcher) deps_.processes.remove_pool(unit);
  pools_.erase(it);
}

}  // namespace idlepool::daemon
