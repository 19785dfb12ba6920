// Fuzzes the process-connector decoder and the tracker behind it: any datagram must decode or be rejected, and any
// sequence of decoded events must leave the tracker consistent, never crash it.
#include <cstdint>

#include "idlepool/core/process_tracker.h"
#include "idlepool/wire/cn_proc.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto batch = idlepool::wire::decode_proc_events({data, size});
  idlepool::ProcessTracker tracker;
  tracker.sync("pool", {{1, 0}, {2, 1}});
  for (const auto& ev : batch.events) {
    auto events = tracker.apply(ev);
    (void)events;
    auto counts = tracker.processes("pool");
    if (!counts || counts->workers > counts->processes) __builtin_trap();
  }
  return 0;
}
