// Fuzzes the metrics endpoint's HTTP: any bytes a client sends get no reply yet or one well-formed HTTP/1.1 reply
// whose Content-Length is its body's (none for HEAD), and metrics are built only for a GET or HEAD of /metrics, and,
// with a bearer token set, only for a request that carries it.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "idlepool/wire/http.h"

namespace {

void check(std::string_view in, const std::optional<std::string>& token) {
  bool built = false;
  auto out = idlepool::wire::respond_http(
      in,
      [&] {
        built = true;
        return std::string("idlepool_pools 1\n");
      },
      token);
  if (!out) {
    if (built) __builtin_trap();
    return;
  }
  if (built && token && in.find(*token) == std::string_view::npos) __builtin_trap();
  if (out->rfind("HTTP/1.1 ", 0) != 0) __builtin_trap();
  size_t end = out->find("\r\n\r\n");
  if (end == std::string::npos) __builtin_trap();
  std::string_view head = std::string_view(*out).substr(0, end);
  size_t cl = head.find("\r\nContent-Length: ");
  if (cl == std::string_view::npos) __builtin_trap();
  size_t length = std::stoul(std::string(head.substr(cl + 18, head.find("\r\n", cl + 2) - cl - 18)));
  size_t body = out->size() - end - 4;
  bool is_head = in.rfind("HEAD ", 0) == 0;
  if (body != (is_head ? 0 : length)) __builtin_trap();
  if (built != (out->rfind("HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4", 0) == 0)) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  check(in, std::nullopt);
  check(in, std::string("s3cr3t-t0ken-0123456789"));
  return 0;
}
