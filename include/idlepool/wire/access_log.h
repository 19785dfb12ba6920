// Web servers' access-log lines and plain timestamp lines, for the simulator (idlepoolctl simulate). Pure.
//
// Combined log format, as nginx's `combined` and Apache's "%h %l %u %t \"%r\" %>s %b \"%{Referer}i\"
// \"%{User-agent}i\"" write it; Apache's vhost_combined ("%v:%p " in front) is told apart by the number of fields
// before the time. The time is "[10/Oct/2000:13:55:36 -0700]"; the request "METHOD TARGET PROTOCOL" (a request line
// that is not one, as scanners send, is kept with no path). Only what the simulator needs is read; the rest of the line
// is not checked.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "idlepool/result.h"

namespace idlepool::wire {

struct AccessLogEntry {
  double time = 0;    // unix seconds
  std::string vhost;  // vhost_combined's %v (its :port dropped); empty in combined
  std::string path;   // the request target's path (no query); empty if the request line was not one
};

// Errors name what is wrong ("no [time] field", "bad month 'Foo'"); the caller adds the file and line.
Result<AccessLogEntry> parse_access_line(std::string_view line);
// "10/Oct/2000:13:55:36 -0700" -> unix seconds.
Result<double> parse_log_time(std::string_view text);

// "TIME POOL": unix seconds (a fraction allowed), then the pool's name; blank lines and # comments are not entries
// (std::nullopt).
struct TimedRequest {
  double time = 0;
  std::string pool;
};
Result<std::optional<TimedRequest>> parse_timestamp_line(std::string_view line);

}  // namespace idlepool::wire
