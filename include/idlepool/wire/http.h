// The HTTP side of the metrics endpoint: just enough HTTP/1.x to answer a scrape, and a clear refusal of the rest.
// Pure: given what a client sent so far, the whole reply, or nothing while more may come.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace idlepool::wire {

// The reply once the request's head (up to the empty line) is complete, nothing while more may come. GET (or HEAD)
// /metrics is answered 200 with `metrics()` as Prometheus text (called only then); / with a pointer to /metrics;
// other paths 404, other methods 405, other HTTP versions 505, anything that is not an HTTP/1.x request line 400 (as
// soon as the first bytes show it cannot be one). Every reply has a Content-Length and closes the connection.
// With `bearer_token`, /metrics is answered only to a request that carries it (`Authorization: Bearer TOKEN`, as
// Prometheus sends with `authorization: credentials_file:`); others get 401. Per-site traffic is nobody else's
// business on a shared host.
std::optional<std::string> respond_http(std::string_view received, const std::function<std::string()>& metrics,
                                        const std::optional<std::string>& bearer_token = std::nullopt);

// A request head longer than this gets http_too_long(): 431.
constexpr size_t kMaxHttpRequest = 8192;
std::string http_too_long();

}  // namespace idlepool::wire
