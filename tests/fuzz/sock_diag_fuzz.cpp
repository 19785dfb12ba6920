// Fuzzes the sock_diag reply decoder: any bytes must decode or be rejected, never read out of bounds.
#include <cstdint>
#include <cstring>

#include "idlepool/wire/sock_diag.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Take the sequence number from the first header, so that captured replies are decoded in full.
  uint32_t seq = 0;
  if (size >= 12) std::memcpy(&seq, data + 8, sizeof(seq));
  idlepool::wire::DiagBatch batch;
  auto r = idlepool::wire::decode_diag_reply({data, size}, seq, batch);
  (void)r;
  return 0;
}
