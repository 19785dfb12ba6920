// What systemd's signals say, and whether they are systemd's at all (internal to src/sys/sd_bus.cpp; a header of its
// own so that tests can feed it real, malformed and forged messages).
#pragma once

#include <systemd/sd-bus.h>

#include <optional>
#include <string>

#include "idlepool/sys/service_manager.h"

namespace idlepool::sys {

// The values a PropertiesChanged signal (sa{sv}as) carried, and whether the unit must be read; nullopt when the
// message is not such a signal (then the unit is read).
std::optional<UnitChanges> parse_unit_changes(sd_bus_message* m);

// Which signals are PID 1's. Anyone on the system bus may send a signal; sd-bus cannot tell, from the well-known name
// in a match, who owns it; and the bus hands a connection the signals addressed to it whatever its matches say. So a
// signal counts only when its sender is the unique name that owns org.freedesktop.systemd1 and it was broadcast (no
// destination). The owner is learnt at start and followed through NameOwnerChanged, which only the bus itself
// (sender org.freedesktop.DBus) can send.
class SignalGate {
 public:
  void set_owner(std::string owner) { owner_ = std::move(owner); }
  const std::string& owner() const { return owner_; }
  bool accept(const char* sender, const char* destination) const;
  // A NameOwnerChanged signal; true if it was the bus's and about systemd (the owner is then updated).
  bool on_owner_changed(const char* sender, const char* destination, const char* name, const char* new_owner);

 private:
  std::string owner_;
};

}  // namespace idlepool::sys
