#include "idlepool/wire/control_protocol.h"

namespace idlepool::wire {
namespace {

struct VerbName {
  Verb verb;
  const char* name;
  bool needs_pool;
};
constexpr VerbName kVerbs[] = {
    {Verb::kStatus, "status", false}, {Verb::kShow, "show", true},      {Verb::kList, "list", false},
    {Verb::kPin, "pin", true},        {Verb::kUnpin, "unpin", true},    {Verb::kStop, "stop", true},
    {Verb::kCheck, "check", false},   {Verb::kReload, "reload", false},
};

ControlError bad(ErrorCode code, std::string why) { return ControlError{code, std::move(why)}; }

struct CodeName {
  ErrorCode code;
  std::string_view name;
};
constexpr CodeName kCodes[] = {
    {ErrorCode::kBadRequest, "bad-request"},
    {ErrorCode::kUnsupportedVersion, "unsupported-version"},
    {ErrorCode::kUnknownVerb, "unknown-verb"},
    {ErrorCode::kUnknownPool, "unknown-pool"},
    {ErrorCode::kRefused, "refused"},
    {ErrorCode::kPermissionDenied, "permission-denied"},
    {ErrorCode::kFailed, "failed"},
};

}  // namespace

std::string_view to_string(Verb verb) {
  for (const auto& v : kVerbs)
    if (v.verb == verb) return v.name;
  return "?";
}

std::string_view to_string(ErrorCode code) {
  for (const auto& c : kCodes)
    if (c.code == code) return c.name;
  return "failed";
}

ErrorCode parse_error_code(std::string_view name) {
  for (const auto& c : kCodes)
    if (c.name == name) return c.code;
  return ErrorCode::kFailed;
}

bool verb_changes_state(Verb verb) {
  return verb == Verb::kPin || verb == Verb::kUnpin || verb == Verb::kStop || verb == Verb::kReload;
}

bool verb_needs_pool(Verb verb) {
  for (const auto& v : kVerbs)
    if (v.verb == verb) return v.needs_pool;
  return false;
}

Result<ControlRequest, ControlError> parse_control_request(std::string_view line) {
  if (line.size() > kMaxControlRequest)
    return bad(ErrorCode::kBadRequest, "request of " + std::to_string(line.size()) + " bytes, more than 64 KiB");
  auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return bad(ErrorCode::kBadRequest, "not JSON");
  if (!j.is_object()) return bad(ErrorCode::kBadRequest, "not a JSON object");
  auto version = j.find("version");
  if (version == j.end() || !version->is_number_integer())
    return bad(ErrorCode::kBadRequest, "missing integer \"version\"");
  if (version->get<int64_t>() != kControlVersion)
    return bad(ErrorCode::kUnsupportedVersion,
               "protocol version " + std::to_string(version->get<int64_t>()) + ", this daemon speaks 1");
  auto verb = j.find("verb");
  if (verb == j.end() || !verb->is_string()) return bad(ErrorCode::kBadRequest, "missing string \"verb\"");
  ControlRequest r;
  const std::string name = verb->get<std::string>();
  const VerbName* found = nullptr;
  for (const auto& v : kVerbs)
    if (name == v.name) found = &v;
  if (!found) return bad(ErrorCode::kUnknownVerb, "unknown verb '" + name.substr(0, 64) + "'");
  r.verb = found->verb;
  auto pool = j.find("pool");
  if (pool != j.end()) {
    if (!pool->is_string()) return bad(ErrorCode::kBadRequest, "\"pool\" is not a string");
    r.pool = pool->get<std::string>();
  }
  if (found->needs_pool && r.pool.empty()) return bad(ErrorCode::kBadRequest, "verb '" + name + "' needs a \"pool\"");
  return r;
}

std::string encode_control_request(const ControlRequest& request) {
  nlohmann::json j = {{"version", kControlVersion}, {"verb", std::string(to_string(request.verb))}};
  if (!request.pool.empty()) j["pool"] = request.pool;
  return j.dump() + "\n";
}

std::string encode_control_response(const ControlResponse& response) {
  nlohmann::json j = {{"version", kControlVersion}, {"ok", response.ok}};
  if (response.ok) {
    j["result"] = response.result;
  } else {
    j["code"] = std::string(to_string(response.error.code));
    j["error"] = response.error.message;
  }
  // Invalid UTF-8 in a unit name or message must not make dump() throw.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

Result<ControlResponse> parse_control_response(std::string_view line) {
  auto j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Error{"the daemon's answer is not JSON", EBADMSG};
  auto version = j.find("version");
  if (version == j.end() || !version->is_number_integer() || version->get<int64_t>() != kControlVersion)
    return Error{"the daemon speaks another protocol version", EPROTO};
  auto ok = j.find("ok");
  if (ok == j.end() || !ok->is_boolean()) return Error{"the daemon's answer has no \"ok\"", EBADMSG};
  ControlResponse r;
  r.ok = ok->get<bool>();
  if (r.ok) {
    r.result = j.value("result", nlohmann::json());
  } else {
    auto code = j.find("code");
    auto error = j.find("error");
    r.error.code =
        code != j.end() && code->is_string() ? parse_error_code(code->get<std::string>()) : ErrorCode::kFailed;
    r.error.message = error != j.end() && error->is_string() ? error->get<std::string>() : std::string();
  }
  return r;
}

ControlResponse control_failure(ControlError error) {
  ControlResponse r;
  r.ok = false;
  r.error = std::move(error);
  return r;
}

}  // namespace idlepool::wire
