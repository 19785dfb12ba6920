#include "idlepool/wire/http.h"

namespace idlepool::wire {

namespace {

std::string http_reply(std::string_view status, std::string_view content_type, const std::string& body, bool head,
                       std::string_view extra_headers = {}) {
  std::string out;
  out.reserve(160 + (head ? 0 : body.size()));
  out.append("HTTP/1.1 ").append(status).append("\r\nContent-Type: ").append(content_type);
  out.append("\r\nContent-Length: ").append(std::to_string(body.size()));
  out.append("\r\nConnection: close\r\n").append(extra_headers).append("\r\n");
  if (!head) out.append(body);
  return out;
}

std::string plain(std::string_view status, const std::string& body, bool head = false,
                  std::string_view extra_headers = {}) {
  return http_reply(status, "text/plain; charset=utf-8", body, head, extra_headers);
}

bool is_token_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

// The value of header `name` in `head` (the lines after the request line), trimmed; nothing if absent.
std::optional<std::string_view> header(std::string_view head, std::string_view name) {
  size_t pos = head.find('\n');
  while (pos != std::string_view::npos && pos + 1 < head.size()) {
    size_t start = pos + 1;
    size_t end = head.find('\n', start);
    std::string_view line = head.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    size_t colon = line.find(':');
    if (colon != std::string_view::npos && iequals(line.substr(0, colon), name)) {
      std::string_view v = line.substr(colon + 1);
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
      while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
      return v;
    }
    pos = end;
  }
  return std::nullopt;
}

// Equal, in a time that does not depend on where they differ (their length is no secret).
bool same_secret(std::string_view given, std::string_view secret) {
  if (given.size() != secret.size() || secret.empty()) return false;
  unsigned diff = 0;
  for (size_t i = 0; i < secret.size(); ++i) diff |= static_cast<unsigned>(given[i] ^ secret[i]);
  return diff == 0;
}

bool authorized(std::string_view head, const std::string& token) {
  auto value = header(head, "authorization");
  if (!value || value->size() < 7 || !iequals(value->substr(0, 7), "bearer ")) return false;
  std::string_view given = value->substr(7);
  while (!given.empty() && given.front() == ' ') given.remove_prefix(1);
  return same_secret(given, token);
}

}  // namespace

std::string http_too_long() {
  return plain("431 Request Header Fields Too Large",
               "request head longer than " + std::to_string(kMaxHttpRequest) + " bytes\n");
}

std::optional<std::string> respond_http(std::string_view received, const std::function<std::string()>& metrics,
                                        const std::optional<std::string>& bearer_token) {
  // No reply to a HEAD has a body, whatever its status.
  bool head = received.rfind("HEAD ", 0) == 0;
  // The head ends with an empty line (CRLF CRLF; a bare LF LF is taken too).
  size_t end = received.find("\r\n\r\n");
  if (end == std::string_view::npos) end = received.find("\n\n");
  size_t first_eol = received.find('\n');
  if (end == std::string_view::npos) {
    // Not complete yet; but a first line that cannot be HTTP need not wait for the rest.
    std::string_view start = received.substr(0, first_eol == std::string_view::npos ? received.size() : first_eol);
    for (char c : start.substr(0, start.find(' ')))
      if (!is_token_char(c)) return plain("400 Bad Request", "not an HTTP request\n", head);
    return std::nullopt;
  }
  std::string_view line = received.substr(0, first_eol);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp1 == 0 || sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
    return plain("400 Bad Request", "the request line is not METHOD TARGET HTTP/1.x\n", head);
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  for (char c : method)
    if (!is_token_char(c)) return plain("400 Bad Request", "the method is not a token\n", head);
  if (version != "HTTP/1.1" && version != "HTTP/1.0") {
    if (version.rfind("HTTP/", 0) == 0)
      return plain("505 HTTP Version Not Supported", "HTTP/1.0 or HTTP/1.1 only\n", head);
    return plain("400 Bad Request", "the request line is not METHOD TARGET HTTP/1.x\n", head);
  }
  // origin-form, or absolute-form (http://host/path) as proxies send it; the query is ignored.
  if (target.rfind("http://", 0) == 0) {
    size_t slash = target.find('/', 7);
    target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
  }
  if (target.empty() || target[0] != '/') return plain("400 Bad Request", "the target is not a path\n", head);
  target = target.substr(0, target.find('?'));
  if (method != "GET" && !head)
    return plain("405 Method Not Allowed", "GET or HEAD only\n", false, "Allow: GET, HEAD\r\n");
  if (target == "/metrics") {
    if (bearer_token && !authorized(received.substr(0, end), *bearer_token))
      return plain("401 Unauthorized", "a bearer token is needed (metrics-token-file)\n", head,
                   "WWW-Authenticate: Bearer realm=\"idlepool\"\r\n");
    return http_reply("200 OK", "text/plain; version=0.0.4; charset=utf-8", metrics(), head);
  }
  if (target == "/")
    return http_reply(
        "200 OK", "text/html; charset=utf-8",
        "<html><head><title>idlepoold</title></head><body><a href=\"/metrics\">Metrics</a></body></html>\n", head);
  return plain("404 Not Found", "not found: idlepoold serves /metrics\n", head);
}

}  // namespace idlepool::wire
