// Real sockets for kernel tests and benchmarks, arranged like a socket-activated pool: this process holds the
// listening socket (as systemd does) and a forked "master" forks workers that accept on it (as php-fpm does).
// Workers speak a line protocol: each "REQ\n" received is answered with "RESP\n", over as many cycles as the client
// sends (keep-alive), until the client closes.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>

#include "idlepool/core/address.h"
#include "idlepool/sys/unique_fd.h"

namespace idlepool::testing {

enum class Family { kTcp4, kTcp6, kUnix };
std::string to_string(Family f);

class TestServer {
 public:
  // Listens on an ephemeral loopback port, or on a fresh unix path under a private temp directory.
  explicit TestServer(Family family, int backlog = 64);
  ~TestServer();
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  const SocketAddress& address() const { return address_; }
  // Forks a master process that forks `workers` accepting workers (more calls add more masters).
  void start_workers(int workers);
  // Kills every worker and master.
  void stop_workers();
  // Closes the listening socket (and removes its path), as a stopped socket unit would.
  void close_listener();
  // Listens again at the same address with a new socket, as a restarted socket unit would.
  void relisten();

 private:
  void open_listener();

  Family family_;
  int backlog_;
  std::string dir_;
  SocketAddress address_;
  sys::UniqueFd listener_;
  std::vector<pid_t> masters_;
};

// A client connection speaking the workers' protocol.
class Client {
 public:
  explicit Client(const SocketAddress& address);
  // One request/response cycle; aborts the test process on failure (tests assert through the probe's counts).
  void request();
  // The same cycle in two halves: the first bytes of a request (the server reads them and waits for the rest), then
  // the rest and the response.
  void begin_request();
  void end_request();
  void close() { fd_.reset(); }
  // Ends the connection and waits until the server has closed its side too.
  void hang_up();

 private:
  sys::UniqueFd fd_;
};

// Polls `done` every 10 ms until it holds or `timeout` passes; returns whether it held.
bool eventually(const std::function<bool()>& done, std::chrono::milliseconds timeout = std::chrono::seconds(10));

// CLOCK_MONOTONIC in ns, the clock of the probe's last_activity.
uint64_t monotonic_ns();

}  // namespace idlepool::testing
