// Fuzzes what idlepoolctl simulate reads (access-log and timestamp lines) and the state file idlepoold reads at
// start (the learnt rhythms): any text gives a value or an error, never a crash, and a state that decodes encodes to
// text that decodes to the same.
#include <cmath>
#include <cstdint>
#include <string_view>

#include "idlepool/wire/access_log.h"
#include "idlepool/wire/rhythm_state.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  if (auto e = idlepool::wire::parse_access_line(in); e && !std::isfinite(e->time)) __builtin_trap();
  if (auto t = idlepool::wire::parse_timestamp_line(in); t && *t && (!std::isfinite((*t)->time) || (*t)->time < 0))
    __builtin_trap();
  auto state = idlepool::wire::decode_rhythms(in);
  if (state) {
    auto again = idlepool::wire::decode_rhythms(idlepool::wire::encode_rhythms(*state));
    if (!again || again->size() != state->size()) __builtin_trap();
    for (const auto& [unit, r] : *state)
      if (again->at(unit).silences.counts != r.silences.counts || again->at(unit).recent.count != r.recent.count)
        __builtin_trap();
  }
  return 0;
}
