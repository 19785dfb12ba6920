#include "idlepool/wire/control_protocol.h"

#include <gtest/gtest.h>

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
    const char* code;
    const char* says;
  };
  std::vector<Case> cases = {
      {"hello", "bad-request", "not JSON"},
      {"[1,2]", "bad-request", "not a JSON object"},
      {R"({"verb":"status"})", "bad-request", "version"},
      {R"({"version":"1","verb":"status"})", "bad-request", "version"},
      {R"({"version":2,"verb":"status"})", "unsupported-version", "protocol version 2"},
      {R"({"version":1})", "bad-request", "verb"},
      {R"({"version":1,"verb":"explode"})", "unknown-verb", "unknown verb 'explode'"},
      {R"({"version":1,"verb":"show"})", "bad-request", "needs a \"pool\""},
      {R"({"version":1,"verb":"stop","pool":7})", "bad-request", "not a string"},
      {std::string(70000, 'x'), "bad-request", "more than 64 KiB"},
      {std::string("{\"version\":1,\"verb\":\"st\xff\xfe\"}"), "bad-request", ""},
  };
  for (const auto& c : cases) {
    auto r = parse_control_request(c.line);
    ASSERT_FALSE(r.ok()) << c.line.substr(0, 40);
    auto response = control_error(r.error());
    EXPECT_FALSE(response.ok);
    if (c.line.find('\xff') == std::string::npos) {
      EXPECT_EQ(response.code, c.code) << c.line.substr(0, 40) << ": " << r.error().message;
      EXPECT_NE(response.error.find(c.says), std::string::npos) << response.error;
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
  ControlResponse err;
  err.ok = false;
  err.code = "unknown-pool";
  err.error = "no pool named x";
  back = parse_control_response(encode_control_response(err));
  ASSERT_TRUE(back.ok());
  EXPECT_FALSE(back->ok);
  EXPECT_EQ(back->code, "unknown-pool");
  EXPECT_FALSE(parse_control_response("garbage").ok());
  EXPECT_FALSE(parse_control_response(R"({"version":9,"ok":true})").ok());
}

TEST(CtlRender, StatusTableAndDurations) {
  nlohmann::json result = {
      {"summary", "2 pools"},
      {"pools",
       {{{"pool", "php-fpm@a.service"}, {"state", "active"}, {"processes", 3}, {"active", 1}, {"accepts", 10},
         {"requests", 12}, {"idle_seconds", 75.2}, {"stops_in_seconds", 224.8}, {"not_stopping_because", nullptr},
         {"unsafe", nullptr}},
        {{"pool", "php-fpm@naive.service"}, {"state", "active"}, {"processes", 1}, {"active", 0}, {"accepts", 1},
         {"requests", nullptr}, {"idle_seconds", nullptr}, {"stops_in_seconds", nullptr},
         {"not_stopping_because", "unsafe: ..."}, {"unsafe", "listens on its own path"}}}}};
  auto text = ctl::render_status(result, {});
  EXPECT_NE(text.find("POOL"), std::string::npos);
  EXPECT_NE(text.find("php-fpm@a.service"), std::string::npos);
  EXPECT_NE(text.find("1m 15s"), std::string::npos);
  EXPECT_NE(text.find("3m 45s"), std::string::npos);
  EXPECT_NE(text.find("unsafe: listens on its own path"), std::string::npos);
  EXPECT_NE(text.find("2 pools listed."), std::string::npos);
  auto bare = ctl::render_status(result, {false});
  EXPECT_EQ(bare.find("POOL"), std::string::npos);
  EXPECT_EQ(bare.find("listed"), std::string::npos);
  EXPECT_EQ(ctl::format_duration(nlohmann::json(3700)), "1h 1m");
  EXPECT_EQ(ctl::format_duration(nlohmann::json()), "-");
  EXPECT_EQ(ctl::format_bytes(nlohmann::json(16 * 1024 * 1024)), "16M");
}

}  // namespace
}  // namespace idlepool::wire
