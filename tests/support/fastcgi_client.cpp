#include "fastcgi_client.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace idlepool::testing {
namespace {

constexpr uint8_t kVersion = 1;
constexpr uint8_t kBeginRequest = 1, kEndRequest = 3, kParams = 4, kStdin = 5, kStdout = 6, kStderr = 7;
constexpr uint16_t kResponder = 1;
constexpr uint8_t kKeepConn = 1;

void record(std::string& out, uint8_t type, uint16_t id, const std::string& content) {
  uint8_t pad = static_cast<uint8_t>((8 - content.size() % 8) % 8);
  uint8_t h[8] = {kVersion,
                  type,
                  static_cast<uint8_t>(id >> 8),
                  static_cast<uint8_t>(id),
                  static_cast<uint8_t>(content.size() >> 8),
                  static_cast<uint8_t>(content.size()),
                  pad,
                  0};
  out.append(reinterpret_cast<char*>(h), 8);
  out += content;
  out.append(pad, '\0');
}

void name_value(std::string& out, const std::string& name, const std::string& value) {
  for (const std::string* s : {&name, &value}) {
    if (s->size() < 128) {
      out.push_back(static_cast<char>(s->size()));
    } else {
      uint32_t n = static_cast<uint32_t>(s->size()) | 0x80000000u;
      for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((n >> shift) & 0xff));
    }
  }
  out += name;
  out += value;
}

bool write_all(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

bool read_exact(int fd, uint8_t* buf, size_t len) {
  while (len > 0) {
    ssize_t n = ::read(fd, buf, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buf += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

std::string FastCgiResponse::body() const {
  size_t end = stdout_data.find("\r\n\r\n");
  return end == std::string::npos ? stdout_data : stdout_data.substr(end + 4);
}

Result<FastCgiClient> FastCgiClient::connect(const SocketAddress& address, bool keep_conn) {
  sys::UniqueFd fd;
  int rc;
  if (address.is_unix()) {
    fd.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    std::memcpy(sun.sun_path + (address.abstract ? 1 : 0), address.path.data(), address.path.size());
    rc = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&sun), sizeof(sun));
  } else if (address.ipv4) {
    fd.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    std::memcpy(&sin.sin_addr, &address.ip[12], 4);
    sin.sin_port = htons(address.port);
    rc = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&sin), sizeof(sin));
  } else {
    fd.reset(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in6 sin6{};
    sin6.sin6_family = AF_INET6;
    std::memcpy(&sin6.sin6_addr, address.ip.data(), 16);
    sin6.sin6_port = htons(address.port);
    rc = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&sin6), sizeof(sin6));
  }
  if (rc != 0) return Error::from_errno("FastCGI connect to " + address.to_string(), errno);
  return FastCgiClient(std::move(fd), keep_conn);
}

Result<FastCgiResponse> FastCgiClient::request(const std::string& script_filename,
                                               const std::map<std::string, std::string>& params) {
  if (!fd_.valid()) return Error{"FastCGI connection already closed (no keep_conn)"};
  uint16_t id = next_id_++;
  std::string out;
  std::string begin(8, '\0');
  begin[0] = static_cast<char>(kResponder >> 8);
  begin[1] = static_cast<char>(kResponder & 0xff);
  begin[2] = static_cast<char>(keep_conn_ ? kKeepConn : 0);
  record(out, kBeginRequest, id, begin);
  std::string nv;
  std::map<std::string, std::string> all = {
      {"SCRIPT_FILENAME", script_filename}, {"SCRIPT_NAME", script_filename}, {"REQUEST_METHOD", "GET"},
      {"SERVER_PROTOCOL", "HTTP/1.1"},      {"GATEWAY_INTERFACE", "CGI/1.1"}, {"QUERY_STRING", ""}};
  for (const auto& [k, v] : params) all[k] = v;
  for (const auto& [k, v] : all) name_value(nv, k, v);
  record(out, kParams, id, nv);
  record(out, kParams, id, "");
  record(out, kStdin, id, "");
  if (!write_all(fd_.get(), out)) return Error::from_errno("FastCGI write", errno);

  FastCgiResponse response;
  for (;;) {
    uint8_t h[8];
    if (!read_exact(fd_.get(), h, 8)) return Error{"FastCGI: connection closed before FCGI_END_REQUEST"};
    uint16_t len = static_cast<uint16_t>(h[4] << 8 | h[5]);
    std::vector<uint8_t> content(len + h[6]);
    if (!content.empty() && !read_exact(fd_.get(), content.data(), content.size()))
      return Error{"FastCGI: truncated record"};
    std::string data(content.begin(), content.begin() + len);
    if (h[1] == kStdout) response.stdout_data += data;
    if (h[1] == kStderr) response.stderr_data += data;
    if (h[1] == kEndRequest) {
      if (len >= 4)
        response.app_status = static_cast<uint32_t>(content[0]) << 24 | content[1] << 16 | content[2] << 8 | content[3];
      break;
    }
  }
  if (!keep_conn_) fd_.reset();
  return response;
}

}  // namespace idlepool::testing
