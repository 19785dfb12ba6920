// What differs per kind of service behind a .socket unit, behind one small interface: how to tell that a service is
// of the kind, whether stopping it is safe (its configuration survives a stop, its stop finishes what is in flight),
// and whether a stalled pool can be nudged. The daemon knows pools; kinds know what runs in them.
//
//   php-fpm  php-fpm masters: their configuration is read (and its includes), the alias-listen rule, the graceful
//            SIGQUIT stop with process_control_timeout, the nudge for ondemand pools.
//   generic  any other socket-activated service (a Python, Node or Go server): stopped with its unit's KillSignal,
//            which must not be SIGKILL; nothing else is known of it.
//
// A kind reads files only through the FileReader it is given (bounded, and faked in tests).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "idlepool/core/units.h"
#include "idlepool/sys/files.h"

namespace idlepool::kinds {

struct AssessInput {
  const ServiceUnit* service = nullptr;
  // Unix paths of the service's own .socket units, canonical (sys::FileReader::canonical).
  std::vector<std::string> own_unix_paths;
  // Unix paths of every managed pool's sockets, canonical, and the pool each belongs to: php-fpm unlinks whatever it
  // listens on, so listening on another pool's socket would make that one unable to wake. (A map the daemon keeps,
  // so that judging a thousand pools is not a thousand times a thousand comparisons.)
  const std::map<std::string, std::string>* socket_owners = nullptr;
  // The operator accepts stops that may cut requests (a stop signal the service takes as "terminate now").
  bool allow_abrupt_stop = false;
};

struct Verdict {
  std::optional<std::string> unsafe;  // never stop it: why
  std::vector<std::string> warnings;  // stopping works, but something deserves a look
  bool nudge_on_stall = false;        // a new connection makes it take connections it missed
};

class ServiceKind {
 public:
  virtual ~ServiceKind() = default;
  virtual std::string_view name() const = 0;
  virtual bool claims(const ServiceUnit& service) const = 0;
  virtual Verdict assess(const AssessInput& in) const = 0;
  // What a server of this kind reads after its answer before it waits for the next request on a kept-alive
  // connection, in bytes (php-fpm: the request's empty FCGI_STDIN record, 8). A connection that received more since
  // its last answer carries a new request.
  virtual uint32_t request_end_bytes() const { return 0; }
};

// The kinds in the order they are asked: the first that claims a service is its kind; generic claims all.
class Kinds {
 public:
  explicit Kinds(sys::FileReader& files);
  const ServiceKind& of(const ServiceUnit& service) const;
  sys::FileReader& files() const { return files_; }

 private:
  sys::FileReader& files_;
  std::vector<std::unique_ptr<ServiceKind>> kinds_;
};

std::unique_ptr<ServiceKind> make_php_fpm_kind(sys::FileReader& files);
std::unique_ptr<ServiceKind> make_generic_kind();

}  // namespace idlepool::kinds
