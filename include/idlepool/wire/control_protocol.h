// The control protocol between idlepoolctl and idlepoold, version 1. Pure encoding and decoding (fuzzed); the socket
// is src/daemon/control_server.cpp and src/ctl.
//
// Transport: a unix stream socket (/run/idlepool/control.sock, root only unless a group is configured). The client
// sends one request, a line of JSON of at most 64 KiB; the daemon answers with one line of JSON and closes.
//   request:  {"version":1,"verb":"status"}            verbs: status list check reload
//             {"version":1,"verb":"show","pool":"UNIT"} verbs with a pool: show pin unpin stop
//   response: {"version":1,"ok":true,"result":...}
//             {"version":1,"ok":false,"code":"...","error":"..."}
//   codes:    bad-request (not JSON, too long, missing or mistyped fields), unsupported-version, unknown-verb,
//             unknown-pool, refused (e.g. a stop that is not safe), permission-denied (a verb this client may not
//             use), failed
// A request that does not end within 5 s, or exceeds 64 KiB, is answered with bad-request (when it can be) and the
// connection closed. The daemon is never disturbed by a client.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "idlepool/result.h"

namespace idlepool::wire {

inline constexpr int kControlVersion = 1;
inline constexpr size_t kMaxControlRequest = 64 * 1024;

enum class Verb { kStatus, kShow, kList, kPin, kUnpin, kStop, kCheck, kReload };
std::string_view to_string(Verb verb);
bool verb_needs_pool(Verb verb);

struct ControlRequest {
  Verb verb = Verb::kStatus;
  std::string pool;
};

// Verbs that change something (stop, pin, unpin, reload), as opposed to those that only read.
bool verb_changes_state(Verb verb);

enum class ErrorCode {
  kBadRequest,
  kUnsupportedVersion,
  kUnknownVerb,
  kUnknownPool,
  kRefused,
  kPermissionDenied,
  kFailed
};
std::string_view to_string(ErrorCode code);  // "bad-request", ...
// An unknown code (a newer daemon's) reads as kFailed.
ErrorCode parse_error_code(std::string_view name);

struct ControlError {
  ErrorCode code = ErrorCode::kFailed;
  std::string message;  // for a human
};

struct ControlResponse {
  bool ok = true;
  nlohmann::json result;  // ok: the verb's result
  ControlError error;     // not ok
};

Result<ControlRequest, ControlError> parse_control_request(std::string_view line);
std::string encode_control_request(const ControlRequest& request);

std::string encode_control_response(const ControlResponse& response);
Result<ControlResponse> parse_control_response(std::string_view line);

ControlResponse control_failure(ControlError error);

}  // namespace idlepool::wire
