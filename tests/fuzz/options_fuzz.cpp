// Fuzzes idlepoold's configuration file (/etc/idlepool/idlepool.conf, which panels and operators write): any text is
// taken or refused with a message, never a crash or an uncaught exception; what is taken is valid.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "idlepool/core/config.h"
#include "options.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static int fd = ::memfd_create("idlepool.conf", MFD_CLOEXEC);
  if (fd < 0 || ::ftruncate(fd, 0) != 0 || ::pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) __builtin_trap();
  static const std::string path = "/proc/self/fd/" + std::to_string(fd);
  auto inv = idlepool::daemon::parse_invocation({"idlepoold", "--config", path, "--check-config"});
  if (inv) {
    if (!idlepool::validate(inv->config)) __builtin_trap();
  } else if (inv.error().message.empty()) {
    __builtin_trap();
  }
  return 0;
}
