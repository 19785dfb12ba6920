// What a systemd PropertiesChanged signal says about a unit, parsed from the sd-bus message (internal to
// src/sys/sd_bus.cpp; a header of its own so that tests can feed it real, and malformed, messages).
#pragma once

#include <systemd/sd-bus.h>

#include <optional>

#include "idlepool/sys/service_manager.h"

namespace idlepool::sys {

// The values a PropertiesChanged signal (sa{sv}as) carried, and whether the unit must be read; nullopt when the
// message is not such a signal (then the unit is read).
std::optional<UnitChanges> parse_unit_changes(sd_bus_message* m);

}  // namespace idlepool::sys
