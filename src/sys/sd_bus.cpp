// systemd over sd-bus. Units are read property by property with many calls in flight (one unit or a thousand);
// stops and restarts are single synchronous calls. Signals are parsed by match callbacks while process() (or a read)
// runs, queued with the values they carry, and handed out by take_events().
#include <spawn.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <utility>

#include "idlepool/sys/service_manager.h"
#include "sd_bus_signals.h"

extern char** environ;

namespace idlepool::sys {
namespace {

constexpr const char* kSystemd = "org.freedesktop.systemd1";
constexpr const char* kManagerPath = "/org/freedesktop/systemd1";
constexpr const char* kManager = "org.freedesktop.systemd1.Manager";
constexpr const char* kUnitPrefix = "/org/freedesktop/systemd1/unit";

struct BusError {
  sd_bus_error e = SD_BUS_ERROR_NULL;
  ~BusError() { sd_bus_error_free(&e); }
  std::string text(int r) const {
    if (e.message) return e.message;
    return std::strerror(-r);
  }
};

// One owner per message reference (moved, never copied).
struct MessagePtr {
  MessagePtr() = default;
  MessagePtr(MessagePtr&& o) noexcept : m(std::exchange(o.m, nullptr)) {}
  MessagePtr& operator=(MessagePtr&& o) noexcept {
    if (this != &o) {
      sd_bus_message_unref(m);
      m = std::exchange(o.m, nullptr);
    }
    return *this;
  }
  MessagePtr(const MessagePtr&) = delete;
  MessagePtr& operator=(const MessagePtr&) = delete;
  ~MessagePtr() { sd_bus_message_unref(m); }
  sd_bus_message* m = nullptr;
};

Error bus_error(const std::string& what, const BusError& e, int r) { return Error{what + ": " + e.text(r), -r}; }

std::string unit_path(const std::string& unit) {
  char* path = nullptr;
  if (sd_bus_path_encode(kUnitPrefix, unit.c_str(), &path) < 0) return {};
  std::string out(path);
  free(path);
  return out;
}

// Reads an "as" at the message's current position.
int read_strv(sd_bus_message* m, std::vector<std::string>& out) {
  char** strv = nullptr;
  int r = sd_bus_message_read_strv(m, &strv);
  if (r < 0) return r;
  for (char** s = strv; s && *s; ++s) {
    out.emplace_back(*s);
    free(*s);
  }
  free(strv);
  return r;
}

// Walks an a{sv} from Properties.GetAll, calling on(name, message positioned inside the variant) for each entry;
// `on` returns true if it consumed the value, otherwise it is skipped.
template <class On>
int for_each_property(sd_bus_message* m, On&& on) {
  int r = sd_bus_message_enter_container(m, 'a', "{sv}");
  if (r < 0) return r;
  while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
    const char* name = nullptr;
    if ((r = sd_bus_message_read(m, "s", &name)) < 0) return r;
    const char* contents = nullptr;
    if ((r = sd_bus_message_peek_type(m, nullptr, &contents)) < 0) return r;
    if ((r = sd_bus_message_enter_container(m, 'v', contents)) < 0) return r;
    r = on(std::string(name), std::string(contents), m);
    if (r < 0) return r;
    if (r == 0 && (r = sd_bus_message_skip(m, contents)) < 0) return r;
    if ((r = sd_bus_message_exit_container(m)) < 0) return r;  // v
    if ((r = sd_bus_message_exit_container(m)) < 0) return r;  // e
  }
  if (r < 0) return r;
  return sd_bus_message_exit_container(m);
}

int read_string(sd_bus_message* m, const std::string& sig, std::string& out) {
  if (sig != "s") return 0;
  const char* s = nullptr;
  int r = sd_bus_message_read(m, "s", &s);
  if (r < 0) return r;
  out = s ? s : "";
  return 1;
}

// A property to read: its interface and name.
struct Wanted {
  const char* interface;
  const char* property;
};

}  // namespace

class SdBus::Impl {
 public:
  sd_bus* bus = nullptr;
  std::vector<sd_bus_slot*> slots;
  std::vector<UnitEvent> events;

  ~Impl() {
    for (auto* s : slots) sd_bus_slot_unref(s);
    sd_bus_flush_close_unref(bus);
  }

  // Properties.Get of many properties of many units at once: up to kWindow calls in flight on the connection, so
  // systemd (and the bus between) work through them back to back instead of waiting for one round trip each.
  // Get and never GetAll on the Unit interface: GetAll makes PID 1 compute UnitFileState and UnitFilePreset, a walk
  // of every unit directory for each unit (systemd/systemd#14730, #29181), the cost of a discovery at scale.
  static constexpr size_t kWindow = 32;  // well under dbus-daemon's 128 pending replies per connection

  struct Get {
    const std::string* unit;
    const char* interface;
    const char* property;
  };

  std::vector<Result<MessagePtr>> get_many(const std::vector<Get>& gets) {
    struct Slot {
      size_t index;
      std::vector<Result<MessagePtr>>* out;
      size_t* outstanding;
    };
    std::vector<Result<MessagePtr>> out;
    out.reserve(gets.size());
    for (size_t i = 0; i < gets.size(); ++i) out.emplace_back(Error{"not read", EIO});
    std::vector<Slot> calls(gets.size());
    size_t next = 0, outstanding = 0;
    auto on_reply = [](sd_bus_message* m, void* userdata, sd_bus_error*) -> int {
      auto* slot = static_cast<Slot*>(userdata);
      --*slot->outstanding;
      if (const sd_bus_error* e = sd_bus_message_get_error(m)) {
        (*slot->out)[slot->index] = Error{e->message ? e->message : e->name, EIO};
      } else {
        MessagePtr reply;
        reply.m = sd_bus_message_ref(m);
        (*slot->out)[slot->index] = std::move(reply);
      }
      return 1;
    };
    std::string path;
    while (next < gets.size() || outstanding > 0) {
      while (next < gets.size() && outstanding < kWindow) {
        size_t i = next++;
        calls[i] = Slot{i, &out, &outstanding};
        if (i == 0 || gets[i].unit != gets[i - 1].unit) path = unit_path(*gets[i].unit);
        int r = sd_bus_call_method_async(bus, nullptr, kSystemd, path.c_str(), "org.freedesktop.DBus.Properties", "Get",
                                         on_reply, &calls[i], "ss", gets[i].interface, gets[i].property);
        if (r < 0) {
          out[i] = Error::from_errno("cannot ask systemd for " + *gets[i].unit, -r);
          continue;
        }
        ++outstanding;
      }
      int r = sd_bus_process(bus, nullptr);
      if (r < 0) {
        // The connection is gone: what is still pending fails.
        for (size_t i = 0; i < gets.size(); ++i)
          if (!out[i] && out[i].error().message == "not read")
            out[i] = Error::from_errno("lost the connection to the system bus", -r);
        return out;
      }
      if (r == 0 && outstanding > 0) sd_bus_wait(bus, UINT64_MAX);
    }
    return out;
  }

  template <class T, size_t N, class OnProperty>
  std::vector<Result<T>> read_units(const std::vector<std::string>& names, const Wanted (&wanted)[N],
                                    OnProperty on_property);

  Result<void> load(const std::string& unit) {
    // LoadUnit makes sure the object exists (an unloaded unit has no properties to read).
    BusError err;
    MessagePtr reply;
    int r = sd_bus_call_method(bus, kSystemd, kManagerPath, kManager, "LoadUnit", &err.e, &reply.m, "s", unit.c_str());
    if (r < 0) return bus_error("systemd cannot load unit " + unit, err, r);
    return {};
  }

  static int on_properties_changed(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* self = static_cast<Impl*>(userdata);
    char* unit = nullptr;
    if (sd_bus_path_decode(sd_bus_message_get_path(m), kUnitPrefix, &unit) > 0 && unit) {
      UnitEvent e{UnitEvent::Kind::kChanged, unit, {}, parse_unit_changes(m)};
      free(unit);
      if (!e.changes || !e.changes->empty()) self->events.push_back(std::move(e));
    }
    return 0;
  }

  static int on_unit_new(sd_bus_message* m, void* userdata, sd_bus_error*) {
    const char* unit = nullptr;
    if (sd_bus_message_read(m, "s", &unit) >= 0 && unit)
      static_cast<Impl*>(userdata)->events.push_back({UnitEvent::Kind::kNew, unit, {}});
    return 0;
  }

  static int on_unit_removed(sd_bus_message* m, void* userdata, sd_bus_error*) {
    const char* unit = nullptr;
    if (sd_bus_message_read(m, "s", &unit) >= 0 && unit)
      static_cast<Impl*>(userdata)->events.push_back({UnitEvent::Kind::kRemoved, unit, {}});
    return 0;
  }

  static int on_reloading(sd_bus_message* m, void* userdata, sd_bus_error*) {
    int starting = 0;
    // Reloading(false) is sent when a daemon-reload is done: units may have appeared, changed or gone.
    if (sd_bus_message_read(m, "b", &starting) >= 0 && !starting)
      static_cast<Impl*>(userdata)->events.push_back({UnitEvent::Kind::kReloaded, {}, {}});
    return 0;
  }

  static int on_job_removed(sd_bus_message* m, void* userdata, sd_bus_error*) {
    uint32_t id = 0;
    const char *path = nullptr, *unit = nullptr, *result = nullptr;
    if (sd_bus_message_read(m, "uoss", &id, &path, &unit, &result) >= 0 && unit)
      static_cast<Impl*>(userdata)->events.push_back({UnitEvent::Kind::kJobDone, unit, result ? result : ""});
    return 0;
  }
};

SdBus::SdBus(std::unique_ptr<Impl> impl, StopVia via) : impl_(std::move(impl)), stop_via_(via) {}
SdBus::~SdBus() = default;

Result<std::unique_ptr<SdBus>> SdBus::open(StopVia stop_via, const std::string& address) {
  auto impl = std::make_unique<Impl>();
  int r;
  if (address.empty()) {
    r = sd_bus_open_system(&impl->bus);
  } else {
    r = sd_bus_new(&impl->bus);
    if (r >= 0) r = sd_bus_set_address(impl->bus, address.c_str());
    if (r >= 0) r = sd_bus_set_bus_client(impl->bus, 1);
    if (r >= 0) r = sd_bus_start(impl->bus);
  }
  if (r < 0) return Error::from_errno("cannot connect to the system bus (is systemd running?)", -r);
  struct Match {
    const char* interface;
    const char* member;
    sd_bus_message_handler_t handler;
  };
  const Match matches[] = {
      {"org.freedesktop.DBus.Properties", "PropertiesChanged", &Impl::on_properties_changed},
      {kManager, "UnitNew", &Impl::on_unit_new},
      {kManager, "UnitRemoved", &Impl::on_unit_removed},
      {kManager, "Reloading", &Impl::on_reloading},
      {kManager, "JobRemoved", &Impl::on_job_removed},
  };
  for (const auto& mt : matches) {
    sd_bus_slot* slot = nullptr;
    r = sd_bus_match_signal(impl->bus, &slot, kSystemd, nullptr, mt.interface, mt.member, mt.handler, impl.get());
    if (r < 0) return Error::from_errno(std::string("cannot subscribe to systemd's ") + mt.member + " signals", -r);
    impl->slots.push_back(slot);
  }
  BusError err;
  r = sd_bus_call_method(impl->bus, kSystemd, kManagerPath, kManager, "Subscribe", &err.e, nullptr, "");
  if (r < 0) return bus_error("cannot subscribe to systemd", err, r);
  return std::unique_ptr<SdBus>(new SdBus(std::move(impl), stop_via));
}

Result<std::vector<std::string>> SdBus::list_units(const std::vector<std::string>& patterns) {
  MessagePtr call, reply;
  BusError err;
  int r = sd_bus_message_new_method_call(impl_->bus, &call.m, kSystemd, kManagerPath, kManager, "ListUnitsByPatterns");
  if (r >= 0) r = sd_bus_message_append_strv(call.m, nullptr);  // any state
  std::vector<char*> strv;
  for (const auto& p : patterns) strv.push_back(const_cast<char*>(p.c_str()));
  strv.push_back(nullptr);
  if (r >= 0) r = sd_bus_message_append_strv(call.m, strv.data());
  if (r < 0) return Error::from_errno("cannot build a ListUnitsByPatterns call", -r);
  r = sd_bus_call(impl_->bus, call.m, 0, &err.e, &reply.m);
  if (r < 0) return bus_error("systemd cannot list units", err, r);
  std::vector<std::string> out;
  r = sd_bus_message_enter_container(reply.m, 'a', "(ssssssouso)");
  const char *name, *desc, *load, *active, *sub, *following, *path, *job_type, *job_path;
  uint32_t job_id;
  while (r >= 0 && (r = sd_bus_message_read(reply.m, "(ssssssouso)", &name, &desc, &load, &active, &sub, &following,
                                           &path, &job_id, &job_type, &job_path)) > 0)
    out.emplace_back(name);
  if (r < 0) return Error::from_errno("cannot read systemd's unit list", -r);
  return out;
}

namespace {

// One property of a service unit (Unit or Service interface) from the variant `m` is positioned in: 1 if it was
// taken, 0 if its name or signature is not one we read, < 0 on a malformed message.
int service_property(const std::string& p, const std::string& sig, sd_bus_message* m, ServiceUnit& u) {
  auto usec = [&](MonoTime& out, bool infinity_is_zero) {
    uint64_t v = 0;
    int rr = sd_bus_message_read(m, "t", &v);
    out = std::chrono::microseconds(infinity_is_zero && v == UINT64_MAX ? 0 : v);
    return rr < 0 ? rr : 1;
  };
  if (p == "LoadState") return read_string(m, sig, u.load_state);
  if (p == "ActiveState") return read_string(m, sig, u.active_state);
  if (p == "SubState") return read_string(m, sig, u.sub_state);
  if (p == "TriggeredBy" && sig == "as") return read_strv(m, u.triggered_by) < 0 ? -EBADMSG : 1;
  if (p == "ActiveEnterTimestampMonotonic" && sig == "t") return usec(u.active_enter, false);
  if (p == "InactiveExitTimestampMonotonic" && sig == "t") return usec(u.inactive_exit, false);
  if (p == "StartLimitBurst" && sig == "u") return sd_bus_message_read(m, "u", &u.start_limit_burst) < 0 ? -EBADMSG : 1;
  if (p == "StartLimitIntervalUSec" && sig == "t") {
    MonoTime interval{0};
    int rr = usec(interval, true);
    u.start_limit_interval = std::chrono::duration_cast<std::chrono::microseconds>(interval);
    return rr;
  }
  if (p == "Job" && sig == "(uo)") {
    uint32_t id = 0;
    const char* path = nullptr;
    int rr = sd_bus_message_read(m, "(uo)", &id, &path);
    u.job_pending = id != 0;
    return rr < 0 ? rr : 1;
  }
  if (p == "ControlGroup") return read_string(m, sig, u.control_group);
  if (p == "MainPID" && sig == "u") return sd_bus_message_read(m, "u", &u.main_pid) < 0 ? -EBADMSG : 1;
  if (p == "KillSignal" && sig == "i") return sd_bus_message_read(m, "i", &u.kill_signal) < 0 ? -EBADMSG : 1;
  if (p == "ExecStart" && sig == "a(sasbttttuii)") {
    int rr = sd_bus_message_enter_container(m, 'a', "(sasbttttuii)");
    while (rr >= 0 && (rr = sd_bus_message_enter_container(m, 'r', "sasbttttuii")) > 0) {
      const char* path = nullptr;
      std::vector<std::string> argv;
      if ((rr = sd_bus_message_read(m, "s", &path)) < 0) break;
      if ((rr = read_strv(m, argv)) < 0) break;
      if ((rr = sd_bus_message_skip(m, "bttttuii")) < 0) break;
      if ((rr = sd_bus_message_exit_container(m)) < 0) break;
      u.exec_start.push_back(std::move(argv));
    }
    if (rr >= 0) rr = sd_bus_message_exit_container(m);
    return rr < 0 ? rr : 1;
  }
  return 0;
}

// One property of a socket unit (Unit or Socket interface), as service_property().
int socket_property(const std::string& p, const std::string& sig, sd_bus_message* m, SocketUnit& s) {
  if (p == "LoadState") return read_string(m, sig, s.load_state);
  if (p == "ActiveState") return read_string(m, sig, s.active_state);
  if (p == "SubState") return read_string(m, sig, s.sub_state);
  if (p == "Triggers" && sig == "as") return read_strv(m, s.triggers) < 0 ? -EBADMSG : 1;
  if (p == "Listen" && sig == "a(ss)") {
    int rr = sd_bus_message_enter_container(m, 'a', "(ss)");
    const char *type = nullptr, *address = nullptr;
    while (rr >= 0 && (rr = sd_bus_message_read(m, "(ss)", &type, &address)) > 0) s.listen.emplace_back(type, address);
    if (rr >= 0) rr = sd_bus_message_exit_container(m);
    return rr < 0 ? rr : 1;
  }
  return 0;
}

constexpr const char* kUnitInterface = "org.freedesktop.systemd1.Unit";

// The properties idlepool reads, LoadState first.
constexpr Wanted kServiceProperties[] = {
    {kUnitInterface, "LoadState"},
    {kUnitInterface, "ActiveState"},
    {kUnitInterface, "SubState"},
    {kUnitInterface, "TriggeredBy"},
    {kUnitInterface, "ActiveEnterTimestampMonotonic"},
    {kUnitInterface, "InactiveExitTimestampMonotonic"},
    {kUnitInterface, "Job"},
    {kUnitInterface, "StartLimitBurst"},
    {kUnitInterface, "StartLimitIntervalUSec"},
    {"org.freedesktop.systemd1.Service", "ControlGroup"},
    {"org.freedesktop.systemd1.Service", "MainPID"},
    {"org.freedesktop.systemd1.Service", "KillSignal"},
    {"org.freedesktop.systemd1.Service", "ExecStart"},
};
constexpr Wanted kSocketProperties[] = {
    {kUnitInterface, "LoadState"},
    {kUnitInterface, "ActiveState"},
    {kUnitInterface, "SubState"},
    {kUnitInterface, "Triggers"},
    {"org.freedesktop.systemd1.Socket", "Listen"},
};

}  // namespace

// Every wanted property of every unit, all asked at once. A unit whose LoadState cannot be read has no object yet (it
// is not loaded): LoadUnit creates it, and its properties are asked again. A unit that is not "loaded" is an error.
template <class T, size_t N, class OnProperty>
std::vector<Result<T>> SdBus::Impl::read_units(const std::vector<std::string>& names, const Wanted (&wanted)[N],
                                               OnProperty on_property) {
  auto ask = [&](const std::vector<const std::string*>& units) {
    std::vector<Get> gets;
    gets.reserve(units.size() * N);
    for (const auto* u : units)
      for (const auto& w : wanted) gets.push_back({u, w.interface, w.property});
    return get_many(gets);
  };
  // In chunks, each parsed before the next is asked: the replies held at once stay bounded (a thousand units at
  // once would hold ~13 000 messages, and the heap would keep their pages after).
  constexpr size_t kChunk = 64;
  std::vector<Result<T>> out;
  std::vector<Result<MessagePtr>> replies;
  size_t chunk_start = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i % kChunk == 0) {
      std::vector<const std::string*> chunk;
      for (size_t k = i; k < std::min(i + kChunk, names.size()); ++k) chunk.push_back(&names[k]);
      replies = ask(chunk);
      chunk_start = i;
    }
    auto first = replies.begin() + static_cast<std::ptrdiff_t>((i - chunk_start) * N);
    std::vector<Result<MessagePtr>> mine(std::make_move_iterator(first), std::make_move_iterator(first + N));
    if (!mine[0]) {
      if (auto l = load(names[i]); !l) {
        out.emplace_back(l.error());
        continue;
      }
      mine = ask({&names[i]});
    }
    T unit;
    unit.name = names[i];
    std::optional<Error> failed;
    for (size_t k = 0; k < N && !failed; ++k) {
      if (!mine[k]) {
        failed = Error{"cannot read " + std::string(wanted[k].property) + " of " + names[i] +
                           " from systemd: " + mine[k].error().message,
                       EIO};
        break;
      }
      sd_bus_message* m = mine[k]->m;
      const char* contents = nullptr;
      int r = sd_bus_message_peek_type(m, nullptr, &contents);
      if (r >= 0) r = sd_bus_message_enter_container(m, 'v', contents);
      if (r >= 0) r = on_property(wanted[k].property, contents ? contents : "", m, unit);
      if (r < 0) failed = Error::from_errno("cannot parse " + std::string(wanted[k].property) + " of " + names[i], -r);
      // LoadState comes first: a unit that is not loaded has nothing else worth reading.
      if (k == 0 && unit.load_state != "loaded")
        failed = Error{"unit " + names[i] + " is " + unit.load_state + ", not loaded", ENOENT};
    }
    if (failed) {
      out.emplace_back(std::move(*failed));
    } else {
      out.emplace_back(std::move(unit));
    }
  }
  return out;
}

// Which properties a signal can settle: those that change as a unit runs and stops are applied from their values;
// LoadState and ControlGroup changing, or any of these invalidated without a value, call for a read. The rest of
// what idlepool reads (TriggeredBy, Triggers, Listen, ExecStart, KillSignal, StartLimit*) changes only with a
// daemon-reload, after which every pool is read again; ExecStart is invalidated at every start and stop (its
// runtime status), which says nothing about the command line.
std::optional<UnitChanges> parse_unit_changes(sd_bus_message* m) {
  static const std::set<std::string> kCarried = {
      "ActiveState", "SubState", "ActiveEnterTimestampMonotonic", "InactiveExitTimestampMonotonic", "Job", "MainPID"};
  static const std::set<std::string> kRead = {"LoadState", "ControlGroup"};
  UnitChanges c;
  const char* interface = nullptr;
  if (sd_bus_message_read(m, "s", &interface) < 0) return std::nullopt;
  ServiceUnit scratch;
  int r = for_each_property(m, [&](const std::string& p, const std::string& sig, sd_bus_message* v) -> int {
    if (kRead.count(p)) c.needs_read = true;
    if (!kCarried.count(p)) return 0;
    int rr = service_property(p, sig, v, scratch);
    if (rr <= 0) {  // not the signature expected: read the unit rather than guess
      c.needs_read = true;
      return rr;
    }
    if (p == "ActiveState") c.active_state = scratch.active_state;
    if (p == "SubState") c.sub_state = scratch.sub_state;
    if (p == "ActiveEnterTimestampMonotonic") c.active_enter = scratch.active_enter;
    if (p == "InactiveExitTimestampMonotonic") c.inactive_exit = scratch.inactive_exit;
    if (p == "Job") c.job_pending = scratch.job_pending;
    if (p == "MainPID") c.main_pid = scratch.main_pid;
    return 1;
  });
  if (r < 0) return std::nullopt;
  std::vector<std::string> invalidated;
  if (read_strv(m, invalidated) < 0) return std::nullopt;
  for (const auto& p : invalidated)
    if (kCarried.count(p) || kRead.count(p)) c.needs_read = true;
  return c;
}

Result<ServiceUnit> SdBus::service(const std::string& name) { return std::move(services({name}).front()); }

Result<SocketUnit> SdBus::socket(const std::string& name) { return std::move(sockets({name}).front()); }

std::vector<Result<ServiceUnit>> SdBus::services(const std::vector<std::string>& names) {
  return impl_->read_units<ServiceUnit>(names, kServiceProperties, &service_property);
}

std::vector<Result<SocketUnit>> SdBus::sockets(const std::vector<std::string>& names) {
  return impl_->read_units<SocketUnit>(names, kSocketProperties, &socket_property);
}

Result<void> SdBus::stop(const std::string& name) {
  if (stop_via_ == StopVia::kSystemctl) return systemctl_stop(name);
  BusError err;
  MessagePtr reply;
  int r = sd_bus_call_method(impl_->bus, kSystemd, kManagerPath, kManager, "StopUnit", &err.e, &reply.m, "ss",
                             name.c_str(), "replace");
  if (r < 0) return bus_error("systemd refused to stop " + name, err, r);
  return {};
}

Result<void> SdBus::restart(const std::string& name) {
  BusError err;
  MessagePtr reply;
  int r = sd_bus_call_method(impl_->bus, kSystemd, kManagerPath, kManager, "RestartUnit", &err.e, &reply.m, "ss",
                             name.c_str(), "replace");
  if (r < 0) return bus_error("systemd refused to restart " + name, err, r);
  return {};
}

std::vector<UnitEvent> SdBus::take_events() { return std::exchange(impl_->events, {}); }

int SdBus::fd() const { return sd_bus_get_fd(impl_->bus); }

uint32_t SdBus::poll_events() const {
  int e = sd_bus_get_events(impl_->bus);
  return e < 0 ? 0u : static_cast<uint32_t>(e);
}

std::optional<uint64_t> SdBus::timeout_usec() const {
  uint64_t usec = 0;
  if (sd_bus_get_timeout(impl_->bus, &usec) < 0 || usec == UINT64_MAX) return std::nullopt;
  return usec;
}

Result<void> SdBus::process() {
  for (;;) {
    int r = sd_bus_process(impl_->bus, nullptr);
    if (r < 0) return Error::from_errno("lost the connection to the system bus", -r);
    if (r == 0) return {};
  }
}

Result<void> systemctl_stop(const std::string& unit) {
  const char* argv[] = {"systemctl", "stop", "--no-block", unit.c_str(), nullptr};
  pid_t pid = 0;
  int r = posix_spawnp(&pid, "systemctl", nullptr, nullptr, const_cast<char**>(argv), environ);
  if (r != 0) return Error::from_errno("cannot run systemctl stop --no-block " + unit, r);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return Error::from_errno("cannot wait for systemctl", errno);
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return Error{"systemctl stop --no-block " + unit + " failed (status " + std::to_string(status) + ")", EIO};
  return {};
}

}  // namespace idlepool::sys
