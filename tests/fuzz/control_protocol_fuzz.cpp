// Fuzzes the control protocol: any bytes a client sends must parse or be refused with a response that encodes to
// one line of JSON; any bytes the daemon could send must parse or be refused by idlepoolctl, and a status model that
// decodes must encode and decode again.
#include <cstdint>
#include <string_view>

#include "idlepool/wire/control_protocol.h"
#include "idlepool/wire/status_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace idlepool;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto request = wire::parse_control_request(text);
  wire::ControlResponse response;
  if (request) {
    response.result = {{"verb", std::string(wire::to_string(request->verb))}, {"pool", request->pool}};
  } else {
    response = wire::control_failure(request.error());
  }
  auto line = wire::encode_control_response(response);
  if (line.empty() || line.back() != '\n' || !wire::parse_control_response(line)) __builtin_trap();
  auto answer = wire::parse_control_response(text);
  if (!answer || !answer->ok) return 0;
  if (auto model = wire::status_from_json(answer->result)) {
    if (!wire::status_from_json(wire::status_to_json(*model))) __builtin_trap();
  }
  MonoTime now{0};
  if (auto pool = wire::pool_from_json(answer->result, &now)) {
    if (!wire::pool_from_json(wire::pool_to_json(*pool, now))) __builtin_trap();
  }
  (void)wire::audits_from_json(answer->result);
  return 0;
}
