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

}  // namespace

std::string http_too_long() {
  return plain("431 Request Header Fields Too Large",
               "request head longer than " + std::to_string(kMaxHttpRequest) + " bytes\n");
}

std::optional<std::string> respond_http(std::string_view received, const std::function<std::string()>& metrics) {
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
  if (target == "/metrics") return http_reply("200 OK", "text/plain; version=0.0.4; charset=utf-8", metrics(), head);
  if (target == "/")
    return http_reply(
        "200 OK", "text/html; charset=utf-8",
        "<html><head><title>idlepoold</title></head><body><a href=\"/metrics\">Metrics</a></body></html>\n", head);
  return plain("404 Not Found", "not found: idlepoold serves /metrics\n", head);
}

}  // namespace idlepool::wire
