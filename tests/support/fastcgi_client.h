// A minimal FastCGI client (responder role), to talk to real php-fpm pools from tests and benchmarks without nginx
// in between: one request at a time, optionally over a kept-alive connection (FCGI_KEEP_CONN, as nginx's
// fastcgi_keep_conn does).
#pragma once

#include <map>
#include <optional>
#include <string>

#include "idlepool/core/address.h"
#include "idlepool/result.h"
#include "idlepool/sys/unique_fd.h"

namespace idlepool::testing {

struct FastCgiResponse {
  std::string stdout_data;  // headers and body as php-fpm wrote them
  std::string stderr_data;
  uint32_t app_status = 0;
  // The part of stdout after the blank line that ends the headers.
  std::string body() const;
};

class FastCgiClient {
 public:
  // Connects to `address` (TCP or unix). keep_conn: ask the server to keep the connection open between requests.
  static Result<FastCgiClient> connect(const SocketAddress& address, bool keep_conn);

  // Runs SCRIPT_FILENAME with the given extra params and returns what the server answered.
  Result<FastCgiResponse> request(const std::string& script_filename,
                                  const std::map<std::string, std::string>& params = {});

 private:
  FastCgiClient(sys::UniqueFd fd, bool keep_conn) : fd_(std::move(fd)), keep_conn_(keep_conn) {}
  sys::UniqueFd fd_;
  bool keep_conn_;
  uint16_t next_id_ = 1;
};

}  // namespace idlepool::testing
