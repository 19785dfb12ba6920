// Fuzzes the decoding of systemd's PropertiesChanged signals (sa{sv}as). The bus delivers only well-marshalled
// messages, so the input drives how one is built: which interface, which properties, each with which type and
// value, whether the invalidated list comes, what trails. Any such message is applied or calls for a read of the
// unit, never a crash; a property that came with the wrong type is never applied.
#include <fuzzer/FuzzedDataProvider.h>
#include <sys/socket.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "sd_bus_signals.h"

namespace {

const char* const kProperties[] = {"ActiveState",
                                   "SubState",
                                   "ActiveEnterTimestampMonotonic",
                                   "InactiveExitTimestampMonotonic",
                                   "Job",
                                   "MainPID",
                                   "LoadState",
                                   "ControlGroup",
                                   "ExecStart",
                                   "Id"};
const char* const kInterfaces[] = {"org.freedesktop.systemd1.Unit", "org.freedesktop.systemd1.Service",
                                   "org.freedesktop.systemd1.Socket", "org.freedesktop.DBus.Properties"};

// Appends one value of a type the provider picks; the type's signature, or nullptr.
const char* append_value(sd_bus_message* m, FuzzedDataProvider& in) {
  switch (in.ConsumeIntegralInRange(0, 7)) {
    case 0: {
      std::string s = in.ConsumeRandomLengthString(32);
      return sd_bus_message_append(m, "s", s.c_str()) >= 0 ? "s" : nullptr;
    }
    case 1:
      return sd_bus_message_append(m, "u", in.ConsumeIntegral<uint32_t>()) >= 0 ? "u" : nullptr;
    case 2:
      return sd_bus_message_append(m, "t", in.ConsumeIntegral<uint64_t>()) >= 0 ? "t" : nullptr;
    case 3:
      return sd_bus_message_append(m, "i", in.ConsumeIntegral<int32_t>()) >= 0 ? "i" : nullptr;
    case 4:
      return sd_bus_message_append(m, "b", in.ConsumeBool()) >= 0 ? "b" : nullptr;
    case 5:
      return sd_bus_message_append(m, "(uo)", in.ConsumeIntegral<uint32_t>(), "/org/freedesktop/systemd1/job/1") >= 0
                 ? "(uo)"
                 : nullptr;
    case 6: {
      std::string s = in.ConsumeRandomLengthString(16);
      return sd_bus_message_append(m, "as", 2, s.c_str(), "x") >= 0 ? "as" : nullptr;
    }
    default:
      return sd_bus_message_append(m, "o", "/org/freedesktop/systemd1/unit/x") >= 0 ? "o" : nullptr;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static sd_bus* bus = [] {
    int fds[2];
    sd_bus* b = nullptr;
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0 || sd_bus_new(&b) < 0 ||
        sd_bus_set_fd(b, fds[0], fds[0]) < 0 || sd_bus_start(b) < 0)
      __builtin_trap();
    return b;
  }();
  FuzzedDataProvider in(data, size);
  sd_bus_message* m = nullptr;
  if (sd_bus_message_new_signal(bus, &m, "/org/freedesktop/systemd1/unit/php_2dfpm_40a_2eservice",
                                "org.freedesktop.DBus.Properties", "PropertiesChanged") < 0)
    __builtin_trap();
  bool typed_right = true;  // every carried property came with its own type
  bool well_formed = in.ConsumeBool();
  if (well_formed) {
    sd_bus_message_append(m, "s", in.PickValueInArray(kInterfaces));
    sd_bus_message_open_container(m, 'a', "{sv}");
    for (int n = in.ConsumeIntegralInRange(0, 8); n > 0; --n) {
      sd_bus_message_open_container(m, 'e', "sv");
      const char* name = in.PickValueInArray(kProperties);
      sd_bus_message_append(m, "s", name);
      static const char* const kTypes[] = {"s", "u", "t", "i", "b", "(uo)", "as", "o"};
      const char* type = in.PickValueInArray(kTypes);
      sd_bus_message_open_container(m, 'v', type);
      bool ok = true;
      switch (type[0]) {
        case 's':
          ok = sd_bus_message_append(m, "s", in.ConsumeRandomLengthString(32).c_str()) >= 0;
          break;
        case 'u':
          ok = sd_bus_message_append(m, "u", in.ConsumeIntegral<uint32_t>()) >= 0;
          break;
        case 't':
          ok = sd_bus_message_append(m, "t", in.ConsumeIntegral<uint64_t>()) >= 0;
          break;
        case 'i':
          ok = sd_bus_message_append(m, "i", in.ConsumeIntegral<int32_t>()) >= 0;
          break;
        case 'b':
          ok = sd_bus_message_append(m, "b", in.ConsumeBool()) >= 0;
          break;
        case '(':
          ok = sd_bus_message_append(m, "(uo)", in.ConsumeIntegral<uint32_t>(), "/org/freedesktop/systemd1/job/7") >= 0;
          break;
        case 'a':
          ok = sd_bus_message_append(m, "as", 1, in.ConsumeRandomLengthString(16).c_str()) >= 0;
          break;
        default:
          ok = sd_bus_message_append(m, "o", "/x") >= 0;
          break;
      }
      if (!ok) {  // e.g. a string that is not UTF-8: the bus would not have carried it
        sd_bus_message_unref(m);
        return 0;
      }
      sd_bus_message_close_container(m);
      sd_bus_message_close_container(m);
      std::string p = name;
      std::string t = type;
      bool expected = (p == "ActiveState" || p == "SubState")                                           ? t == "s"
                      : (p == "ActiveEnterTimestampMonotonic" || p == "InactiveExitTimestampMonotonic") ? t == "t"
                      : p == "Job"                                                                      ? t == "(uo)"
                      : p == "MainPID"                                                                  ? t == "u"
                                                                                                        : true;
      typed_right = typed_right && expected;
    }
    sd_bus_message_close_container(m);
    if (in.ConsumeBool()) sd_bus_message_append(m, "as", 1, in.PickValueInArray(kProperties));
  }
  // Anything else, or trailing values.
  for (int n = in.ConsumeIntegralInRange(0, 3); n > 0; --n)
    if (append_value(m, in) == nullptr) break;
  if (sd_bus_message_seal(m, 1, 0) < 0 || sd_bus_message_rewind(m, 1) < 0) {
    sd_bus_message_unref(m);
    return 0;
  }
  auto changes = idlepool::sys::parse_unit_changes(m);
  if (changes && !typed_right && !changes->needs_read) __builtin_trap();
  sd_bus_message_unref(m);
  return 0;
}
