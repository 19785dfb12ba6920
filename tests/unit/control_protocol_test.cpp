#include "idlepool/wire/control_protocol.h"

#include <gtest/gtest.h>

#include "idlepool/wire/status_json.h"
#include "render.h"

namespace idlepool::wire {
namespace {

TEST(ControlProtocol, RequestsRoundTrip) {
  for (auto verb : {Verb::kStatus, Verb::kList, Verb::kCheck, Verb::kReload}) {
    auto r = parse_control_request(encode_control_request({verb, ""}));
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->verb, verb);
  }
  for (auto verb : {Verb::kShow, Verb::kPin, Verb::kUnpin, Verb::kStop}) {
    auto line = encode_control_request({verb, "php-fpm@site.service"});
    EXPECT_EQ(line.back(), '\n');
    auto r = parse_control_request(line.substr(0, line.size() - 1));
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->verb, verb);
    EXPECT_EQ(r->pool, "php-fpm@site.service");
  }
}

TEST(ControlProtocol, BadRequestsGetACodeAndAReason) {
  struct Case {
    std::string line;
    ErrorCode code;
    const char* says;
  };
  std::vector<Case> cases = {
      {"hello", ErrorCode::kBadRequest, "not JSON"},
      {"[1,2]", ErrorCode::kBadRequest, "not a JSON object"},
      {R"({"verb":"status"})", ErrorCode::kBadRequest, "version"},
      {R"({"version":"1","verb":"status"})", ErrorCode::kBadRequest, "version"},
      {R"({"version":2,"verb":"status"})", ErrorCode::kUnsupportedVersion, "protocol version 2"},
      {R"({"version":1})", ErrorCode::kBadRequest, "verb"},
      {R"({"version":1,"verb":"explode"})", ErrorCode::kUnknownVerb, "unknown verb 'explode'"},
      {R"({"version":1,"verb":"show"})", ErrorCode::kBadRequest, "needs a \"pool\""},
      {R"({"version":1,"verb":"stop","pool":7})", ErrorCode::kBadRequest, "not a string"},
      {std::string(70000, 'x'), ErrorCode::kBadRequest, "more than 64 KiB"},
      {std::string("{\"version\":1,\"verb\":\"st\xff\xfe\"}"), ErrorCode::kBadRequest, ""},
  };
  for (const auto& c : cases) {
    auto r = parse_control_request(c.line);
    ASSERT_FALSE(r.ok()) << c.line.substr(0, 40);
    auto response = control_failure(r.error());
    EXPECT_FALSE(response.ok);
    if (c.line.find('\xff') == std::string::npos) {
      EXPECT_EQ(response.error.code, c.code) << c.line.substr(0, 40) << ": " << r.error().message;
      EXPECT_NE(response.error.message.find(c.says), std::string::npos) << response.error.message;
    }
    // Whatever it was, the answer is one line of valid JSON.
    auto line = encode_control_response(response);
    EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1);
    EXPECT_TRUE(parse_control_response(line).ok());
  }
}

TEST(ControlProtocol, ResponsesRoundTrip) {
  ControlResponse ok;
  ok.result = {{"pools", {"a.service"}}};
  auto back = parse_control_response(encode_control_response(ok));
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(back->ok);
  EXPECT_EQ(back->result["pools"][0], "a.service");
  ControlResponse err = control_failure({ErrorCode::kUnknownPool, "no pool named x"});
  back = parse_control_response(encode_control_response(err));
  ASSERT_TRUE(back.ok());
  EXPECT_FALSE(back->ok);
  EXPECT_EQ(back->error.code, ErrorCode::kUnknownPool);
  EXPECT_EQ(back->error.message, "no pool named x");
  EXPECT_EQ(parse_error_code("a-code-from-a-newer-daemon"), ErrorCode::kFailed);
  for (auto code : {ErrorCode::kBadRequest, ErrorCode::kUnsupportedVersion, ErrorCode::kUnknownVerb,
                    ErrorCode::kUnknownPool, ErrorCode::kRefused, ErrorCode::kPermissionDenied, ErrorCode::kFailed})
    EXPECT_EQ(parse_error_code(to_string(code)), code);
  EXPECT_FALSE(parse_control_response("garbage").ok());
  EXPECT_FALSE(parse_control_response(R"({"version":9,"ok":true})").ok());
}

TEST(CtlRender, StatusTableAndDurations) {
  using namespace std::chrono_literals;
  status::Model m;
  m.now = std::chrono::duration_cast<MonoTime>(10000s);
  m.summary = "2 pools";
  status::Pool a;
  a.unit = "php-fpm@a.service";
  a.active_state = "active";
  a.processes = status::Processes{3, 2, 100};
  a.sockets.push_back({"php-fpm@a.socket", "/run/php/a.sock", true, status::SocketCounters{10, 12, 1, 0}});
  a.last_activity = m.now - std::chrono::duration_cast<MonoTime>(std::chrono::duration<double>(75.2));
  a.decision = wait_because(Rule::kIdleTimeout,
                            m.now + std::chrono::duration_cast<MonoTime>(std::chrono::duration<double>(224.8)));
  status::Pool n;
  n.unit = "php-fpm@naive.service";
  n.active_state = "active";
  n.processes = status::Processes{1, 0, 7};
  n.sockets.push_back(
      {"php-fpm@naive.socket", "/run/php/naive.sock", true, status::SocketCounters{1, std::nullopt, 0, 0}});
  n.unsafe = "listens on its own path";
  n.decision = never_because(Rule::kUnsafe, "listens on its own path");
  status::Pool f;  // its socket unit failed (service-start-limit-hit): said before anything else
  f.unit = "php-fpm@down.service";
  f.active_state = "failed";
  f.sockets.push_back({"php-fpm@down.socket", "/run/php/down.sock", false, std::nullopt});
  f.unsafe = "its socket does not listen";
  m.pools = {a, n, f};
  auto text = ctl::render_status(m, {});
  EXPECT_NE(text.find("php-fpm@down.socket not listening: cannot wake"), std::string::npos) << text;
  EXPECT_NE(text.find("POOL"), std::string::npos);
  EXPECT_NE(text.find("php-fpm@a.service"), std::string::npos);
  EXPECT_NE(text.find("1m 15s"), std::string::npos) << text;
  EXPECT_NE(text.find("3m 45s"), std::string::npos) << text;
  EXPECT_NE(text.find("unsafe: listens on its own path"), std::string::npos);
  EXPECT_NE(text.find("3 pools listed."), std::string::npos) << text;
  auto bare = ctl::render_status(m, {false});
  EXPECT_EQ(bare.find("POOL"), std::string::npos);
  EXPECT_EQ(bare.find("listed"), std::string::npos);
  // The same table from the model as it travels: encoded by the daemon, decoded by idlepoolctl.
  auto back = status_from_json(status_to_json(m));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(ctl::render_status(*back, {}), text);
  EXPECT_EQ(ctl::format_duration(3700.0), "1h 1m");
  EXPECT_EQ(ctl::format_duration(std::nullopt), "-");
  EXPECT_EQ(ctl::format_bytes(16u * 1024 * 1024), "16M");
}

}  // namespace
}  // namespace idlepool::wire
