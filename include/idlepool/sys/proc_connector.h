// The kernel's process connector (netlink NETLINK_CONNECTOR, group CN_IDX_PROC) through libnl: fork, exec and exit
// events of every process on the host. Its fd joins the daemon's epoll loop; drain() reads what is queued.
//
// Loss: netlink drops events when the receive buffer is full (recv says ENOBUFS). The connector counts overruns and,
// from the per-CPU sequence numbers the kernel stamps on events, exactly how many events were lost.
// The kernel ignores subscriptions from outside the initial pid and user namespaces without a word; open() checks
// the namespaces and waits for the kernel's acknowledgement, so it fails with a reason instead of running blind.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "idlepool/result.h"
#include "idlepool/wire/cn_proc.h"

struct nl_sock;

namespace idlepool::sys {

struct ProcConnectorOptions {
  // Bursts of thousands of forks must fit: each queued event takes about 1 KiB of buffer (the skb it travels in).
  int receive_buffer_bytes = 16 << 20;
  std::chrono::milliseconds subscribe_timeout{2000};
};

struct ProcConnectorStats {
  uint64_t events = 0;    // decoded events handed on
  uint64_t overruns = 0;  // times the kernel reported a full receive buffer (ENOBUFS)
  uint64_t lost = 0;      // events lost, from gaps in the per-CPU sequence numbers (known once the next event from
                          // that CPU arrives; an overrun is known at once)
  uint64_t rejected = 0;  // malformed or foreign messages dropped
  uint64_t acks = 0;      // acknowledgements read (anyone's subscription request makes the kernel send one to all)
  std::string last_rejection;
};

class ProcConnector {
 public:
  // Subscribes (PROC_CN_MCAST_LISTEN) and waits for the kernel's acknowledgement.
  static Result<std::unique_ptr<ProcConnector>> open(const ProcConnectorOptions& options = {});
  ~ProcConnector();
  ProcConnector(const ProcConnector&) = delete;
  ProcConnector& operator=(const ProcConnector&) = delete;

  int fd() const;

  struct Drained {
    size_t events = 0;
    bool lost = false;  // events were dropped since the previous drain
  };
  // Reads every queued message without blocking and hands each event to `sink`, acknowledgements excluded.
  Result<Drained> drain(const std::function<void(const wire::ProcEvent&)>& sink);

  // Unsubscribes (PROC_CN_MCAST_IGNORE). The destructor does it if not done.
  Result<void> close();

  const ProcConnectorStats& stats() const { return stats_; }

 private:
  explicit ProcConnector(nl_sock* sock);
  Result<void> subscribe(std::chrono::milliseconds timeout);
  void account(const wire::ProcEvent& ev, bool& lost);

  struct SockDeleter {
    void operator()(nl_sock* s) const;
  };
  std::unique_ptr<nl_sock, SockDeleter> sock_;
  bool subscribed_ = false;
  uint32_t seq_ = 0;
  std::unordered_map<uint32_t, uint32_t> last_seq_;  // per CPU
  // While subscribe() waits: the ack it waits for, and that ack's error once read. Acknowledgements are never kept
  // otherwise: any process on the host can make the kernel send them, as many as it likes.
  std::optional<uint32_t> awaiting_ack_;
  std::optional<uint32_t> awaited_error_;
  ProcConnectorStats stats_;
};

// Whether this process is in the initial pid and user namespaces (the only place the connector reports to).
Result<void> check_initial_namespaces();

}  // namespace idlepool::sys
