// Time as idlepool uses it: CLOCK_MONOTONIC (the probe's clock and systemd's *TimestampMonotonic properties), as a
// duration since boot. Its own header so that adapters and wire codecs need nothing else from core to speak of time.
// Nothing here reads a clock: the daemon's clock is injected (src/daemon), tests set theirs.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace idlepool {

using MonoTime = std::chrono::nanoseconds;

inline MonoTime mono_from_ns(uint64_t ns) { return MonoTime{static_cast<int64_t>(ns)}; }
inline double to_seconds(MonoTime d) { return std::chrono::duration<double>(d).count(); }
// "12s", whole seconds rounded down (log lines and decision texts).
inline std::string whole_seconds(MonoTime d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(d).count()) + "s";
}

}  // namespace idlepool
