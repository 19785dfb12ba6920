#include "idlepool/wire/rhythm_state.h"

#include <nlohmann/json.hpp>

namespace idlepool::wire {

using nlohmann::json;

std::string encode_rhythms(const std::map<std::string, LearntRhythm>& pools) {
  json out = {{"version", kRhythmStateVersion}, {"pools", json::object()}};
  for (const auto& [unit, r] : pools) {
    json recent = json::array();
    // Oldest first: the ring's next slot holds the oldest once it is full.
    size_t first = r.recent.count < kRecentGaps ? 0 : r.recent.next;
    for (size_t i = 0; i < r.recent.count; ++i) recent.push_back(r.recent.seconds[(first + i) % kRecentGaps]);
    out["pools"][unit] = {{"silences", r.silences.counts}, {"recent", recent}};
  }
  return out.dump() + "\n";
}

Result<std::map<std::string, LearntRhythm>> decode_rhythms(std::string_view text) {
  json in = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (in.is_discarded()) return Error{"not JSON"};
  if (!in.is_object() || !in.contains("version") || !in["version"].is_number_integer()) return Error{"no \"version\""};
  if (in["version"].get<int64_t>() != kRhythmStateVersion)
    return Error{"version " + in["version"].dump() + ", not " + std::to_string(kRhythmStateVersion)};
  if (!in.contains("pools") || !in["pools"].is_object()) return Error{"no \"pools\" object"};
  if (in["pools"].size() > kMaxRhythmPools)
    return Error{std::to_string(in["pools"].size()) + " pools, more than " + std::to_string(kMaxRhythmPools)};
  std::map<std::string, LearntRhythm> out;
  for (const auto& item : in["pools"].items()) {
    const std::string& unit = item.key();  // not a structured binding: clang 14 cannot capture one
    const json& p = item.value();
    auto bad = [&unit](const std::string& what) { return Error{"pool \"" + unit.substr(0, 256) + "\": " + what}; };
    if (unit.empty() || unit.size() > 256) return bad("a unit name of " + std::to_string(unit.size()) + " bytes");
    if (!p.is_object() || !p.contains("silences") || !p["silences"].is_array() || p["silences"].size() != kGapBins)
      return bad("\"silences\" is not an array of " + std::to_string(kGapBins) + " counts");
    LearntRhythm r;
    for (size_t b = 0; b < kGapBins; ++b) {
      const auto& c = p["silences"][b];
      if (!c.is_number_unsigned() || c.get<uint64_t>() > UINT16_MAX)
        return bad("silence count " + std::to_string(b) + " is not a number from 0 to 65535");
      r.silences.counts[b] = static_cast<uint16_t>(c.get<uint64_t>());
    }
    if (p.contains("recent")) {
      const auto& recent = p["recent"];
      if (!recent.is_array() || recent.size() > kRecentGaps)
        return bad("\"recent\" is not an array of at most " + std::to_string(kRecentGaps) + " silences");
      for (const auto& s : recent) {
        if (!s.is_number_unsigned() || s.get<uint64_t>() > UINT32_MAX) return bad("a recent silence is not seconds");
        r.recent.add(std::chrono::seconds(s.get<uint64_t>()));
      }
    }
    out.emplace(unit, r);
  }
  return out;
}

}  // namespace idlepool::wire
