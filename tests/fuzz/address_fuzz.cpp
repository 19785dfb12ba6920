// Fuzzes the socket-address parser (ListenStream= values systemd reports, php-fpm listen values, metrics-listen):
// whatever parses prints back as text that parses to the same address.
#include <cstdint>
#include <string_view>

#include "idlepool/core/address.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto address = idlepool::parse_socket_address(in);
  if (!address) return 0;
  auto again = idlepool::parse_socket_address(address->to_string());
  if (!again || !(*again == *address)) __builtin_trap();
  return 0;
}
