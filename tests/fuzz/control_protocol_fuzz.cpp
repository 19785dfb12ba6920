// Fuzzes the control protocol: any bytes a client sends must parse or be refused with a response that encodes to
// one line of JSON; any bytes the daemon could send must parse or be refused by idlepoolctl.
#include <cstdint>
#include <string_view>

#include "idlepool/wire/control_protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto request = idlepool::wire::parse_control_request(text);
  idlepool::wire::ControlResponse response;
  if (request) {
    response.result = {{"verb", std::string(idlepool::wire::to_string(request->verb))}, {"pool", request->pool}};
  } else {
    response = idlepool::wire::control_error(request.error());
  }
  auto line = idlepool::wire::encode_control_response(response);
  if (line.empty() || line.back() != '\n' || !idlepool::wire::parse_control_response(line)) __builtin_trap();
  (void)idlepool::wire::parse_control_response(text);
  return 0;
}
