// The pools' learnt rhythms (core/rhythm.h) as the state file's text (idlepoold keeps it in /var/lib/idlepool), so
// that a restart keeps what was learnt. JSON:
//   {"version": 1, "pools": {"php8.2-fpm@site.service": {"silences": [18 counts], "recent": [seconds, oldest first]}}}
// Pure. Anything else is refused whole, with what is wrong and where (the daemon then starts from nothing).
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "idlepool/core/rhythm.h"
#include "idlepool/result.h"

namespace idlepool::wire {

struct LearntRhythm {
  GapHistogram silences;
  RecentGaps recent;
};

inline constexpr int kRhythmStateVersion = 1;
inline constexpr size_t kMaxRhythmPools = 100000;  // a bound on what a file may make the daemon hold

std::string encode_rhythms(const std::map<std::string, LearntRhythm>& pools);
Result<std::map<std::string, LearntRhythm>> decode_rhythms(std::string_view text);

}  // namespace idlepool::wire
