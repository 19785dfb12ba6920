#include "idlepool/wire/access_log.h"

#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>

namespace idlepool::wire {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

template <class T>
bool number(std::string_view s, T& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

// Days since 1970-01-01 of a civil date (Howard Hinnant's days_from_civil).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

constexpr std::array<std::string_view, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

}  // namespace

Result<double> parse_log_time(std::string_view t) {
  // dd/Mon/yyyy:HH:MM:SS +zzzz
  if (t.size() != 26 || t[2] != '/' || t[6] != '/' || t[11] != ':' || t[14] != ':' || t[17] != ':' || t[20] != ' ')
    return Error{"bad time '" + std::string(t.substr(0, 40)) + "' (want dd/Mon/yyyy:HH:MM:SS +zzzz)"};
  unsigned day = 0, hour = 0, minute = 0, second = 0, zone = 0;
  int64_t year = 0;
  if (!number(t.substr(0, 2), day) || !number(t.substr(7, 4), year) || !number(t.substr(12, 2), hour) ||
      !number(t.substr(15, 2), minute) || !number(t.substr(18, 2), second) || !number(t.substr(22, 4), zone) ||
      (t[21] != '+' && t[21] != '-'))
    return Error{"bad time '" + std::string(t) + "'"};
  unsigned month = 0;
  while (month < kMonths.size() && kMonths[month] != t.substr(3, 3)) ++month;
  if (month == kMonths.size()) return Error{"bad month '" + std::string(t.substr(3, 3)) + "' in the time"};
  if (day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60 || zone % 100 > 59 || zone > 1400)
    return Error{"time out of range: '" + std::string(t) + "'"};
  int64_t offset = static_cast<int64_t>(zone / 100 * 3600 + zone % 100 * 60) * (t[21] == '-' ? -1 : 1);
  int64_t s = days_from_civil(year, month + 1, day) * 86400 + hour * 3600 + minute * 60 + second - offset;
  return static_cast<double>(s);
}

Result<AccessLogEntry> parse_access_line(std::string_view line) {
  line = trim(line);
  auto open = line.find('[');
  if (open == std::string_view::npos) return Error{"no [time] field"};
  auto close = line.find(']', open);
  if (close == std::string_view::npos) return Error{"the [time] field is not closed"};
  // Fields before the time: host ident user (combined), or vhost:port host ident user (vhost_combined).
  std::string_view head = trim(line.substr(0, open));
  size_t fields = 0;
  std::string_view first;
  for (size_t i = 0; i < head.size();) {
    while (i < head.size() && head[i] == ' ') ++i;
    if (i >= head.size()) break;
    size_t j = head.find(' ', i);
    if (j == std::string_view::npos) j = head.size();
    if (fields == 0) first = head.substr(i, j - i);
    ++fields;
    i = j;
  }
  if (fields != 3 && fields != 4)
    return Error{"expected 3 fields (combined) or 4 (vhost_combined) before the time, found " + std::to_string(fields)};
  AccessLogEntry e;
  if (fields == 4) {
    auto colon = first.rfind(':');
    e.vhost = std::string(colon == std::string_view::npos ? first : first.substr(0, colon));
  }
  auto time = parse_log_time(line.substr(open + 1, close - open - 1));
  if (!time) return time.error();
  e.time = *time;
  // "METHOD TARGET PROTOCOL", with \" and \\ escapes.
  auto quote = line.find('"', close);
  if (quote == std::string_view::npos) return Error{"no \"request\" field after the time"};
  std::string request;
  size_t i = quote + 1;
  for (; i < line.size() && line[i] != '"'; ++i) {
    if (line[i] == '\\' && i + 1 < line.size()) ++i;
    request.push_back(line[i]);
  }
  if (i >= line.size()) return Error{"the \"request\" field is not closed"};
  auto sp1 = request.find(' ');
  auto sp2 = sp1 == std::string::npos ? std::string::npos : request.find(' ', sp1 + 1);
  if (sp1 != std::string::npos && sp2 != std::string::npos) {
    std::string target = request.substr(sp1 + 1, sp2 - sp1 - 1);
    if (auto scheme = target.find("://"); scheme != std::string::npos && target.front() != '/') {
      auto slash = target.find('/', scheme + 3);
      target = slash == std::string::npos ? "/" : target.substr(slash);
    }
    if (!target.empty() && target.front() == '/') e.path = target.substr(0, target.find_first_of("?#"));
  }
  return e;
}

Result<std::optional<TimedRequest>> parse_timestamp_line(std::string_view line) {
  line = trim(line);
  if (line.empty() || line.front() == '#') return std::optional<TimedRequest>{};
  auto sp = line.find_first_of(" \t");
  if (sp == std::string_view::npos) return Error{"expected 'TIME POOL', found one field"};
  TimedRequest r;
  std::string_view time = line.substr(0, sp);
  if (!number(time, r.time) || !std::isfinite(r.time) || r.time < 0)
    return Error{"bad time '" + std::string(time.substr(0, 40)) + "' (want unix seconds)"};
  std::string_view pool = trim(line.substr(sp));
  if (pool.find_first_of(" \t") != std::string_view::npos) return Error{"expected 'TIME POOL', found more fields"};
  r.pool = std::string(pool);
  return std::optional<TimedRequest>{std::move(r)};
}

}  // namespace idlepool::wire
