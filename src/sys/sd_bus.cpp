// systemd over sd-bus, attached to the daemon's sd-event loop: nothing here blocks. Units are read property by
// property with up to kWindow calls in flight (one unit or a thousand), stops and restarts are asynchronous calls,
// `systemctl stop` is a child process watched through its pidfd. Every answer comes back through a callback from the
// loop, never before the call that asked returns.
//
// Signals: only PID 1's count. sd-bus matches a signal's sender against the well-known name
// org.freedesktop.systemd1 without knowing who owns it, and the bus delivers signals addressed to this connection
// from anyone; so every handler checks that the sender is the unique name that owns org.freedesktop.systemd1 (learnt
// at start, followed through the bus's NameOwnerChanged) and that the signal was broadcast, not addressed to us.
// Anything else is dropped and counted (SignalGate).
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <limits>
#include <map>
#include <memory>
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
constexpr const char* kDBus = "org.freedesktop.DBus";

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

// The error a method reply carries, if any.
std::optional<Error> reply_error(sd_bus_message* m, const std::string& what) {
  const sd_bus_error* e = sd_bus_message_get_error(m);
  if (!e) return std::nullopt;
  return Error{what + ": " + (e->message ? e->message : e->name ? e->name : "error"), EIO};
}

// Hands an asynchronous call's slot to the bus with the call's context: the slot floats (the bus frees it after the
// reply, or when it closes) and frees the context then. Making a slot float gives the bus a reference of its own, so
// the one the call gave us is dropped here: kept, it left every slot alive after its reply, with its context and the
// reply messages that context held (a few KB for each unit read, for good).
template <class Context>
void float_slot(sd_bus_slot* slot) {
  sd_bus_slot_set_floating(slot, 1);
  sd_bus_slot_set_destroy_callback(slot, [](void* p) { delete static_cast<Context*>(p); });
  sd_bus_slot_unref(slot);
}

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

// One property of a service unit (Unit or Service interface) from the variant `m` is positioned in: 1 if it was
// taken, 0 if its name or signature is not one we read, < 0 on a malformed message.
int service_property(const std::string& p, const std::string& sig, sd_bus_message* m, ServiceUnit& u) {
  auto usec = [&](MonoTime& out, bool infinity_is_zero) {
    uint64_t v = 0;
    int rr = sd_bus_message_read(m, "t", &v);
    if (rr < 0) return rr;
    if (infinity_is_zero && v == UINT64_MAX) v = 0;
    // Beyond what nanoseconds hold (292 years of uptime) is no time PID 1 sends (found by fuzz_unit_signals).
    constexpr uint64_t kMaxUsec = static_cast<uint64_t>(std::numeric_limits<int64_t>::max() / 1000);
    if (v > kMaxUsec) return -ERANGE;
    out = std::chrono::microseconds(static_cast<int64_t>(v));
    return 1;
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

bool SignalGate::accept(const char* sender, const char* destination) const {
  if (destination != nullptr) return false;  // systemd broadcasts; a signal addressed to us is someone else's
  return sender != nullptr && !owner_.empty() && owner_ == sender;
}

bool SignalGate::on_owner_changed(const char* sender, const char* destination, const char* name,
                                  const char* new_owner) {
  // Only the bus itself speaks as org.freedesktop.DBus; it broadcasts NameOwnerChanged.
  if (destination != nullptr || sender == nullptr || std::strcmp(sender, kDBus) != 0) return false;
  if (name == nullptr || std::strcmp(name, kSystemd) != 0) return false;
  owner_ = new_owner ? new_owner : "";
  return true;
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

// ---- SdBus -------------------------------------------------------------------------------------------------------

namespace {

uint64_t now_usec() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

// The unique name that owns org.freedesktop.systemd1, if any.
std::optional<std::string> name_owner(sd_bus* bus) {
  sd_bus_message* reply = nullptr;
  sd_bus_error err = SD_BUS_ERROR_NULL;
  int r = sd_bus_call_method(bus, kDBus, "/org/freedesktop/DBus", kDBus, "GetNameOwner", &err, &reply, "s", kSystemd);
  sd_bus_error_free(&err);
  if (r < 0) return std::nullopt;
  MessagePtr owned;
  owned.m = reply;
  const char* owner = nullptr;
  if (sd_bus_message_read(reply, "s", &owner) < 0 || !owner) return std::nullopt;
  return std::string(owner);
}

}  // namespace

class SdBus::Impl {
 public:
  // Well under dbus-daemon's 128 pending replies per connection; enough to keep PID 1 busy back to back.
  static constexpr size_t kWindow = 32;

  sd_bus* bus = nullptr;
  sd_event* event = nullptr;
  std::vector<sd_bus_slot*> slots;
  std::vector<UnitEvent> events;
  SignalGate gate;
  uint64_t dropped_signals = 0;
  StopVia stop_via = StopVia::kBus;

  // One read_services()/read_sockets() call: every wanted property of every unit, asked with Properties.Get (never
  // GetAll: on the Unit interface it makes PID 1 compute UnitFileState and UnitFilePreset, a walk of every unit
  // directory for each unit, systemd#14730, #29181).
  struct Read {
    Impl* owner = nullptr;
    std::vector<std::string> names;
    const Wanted* wanted = nullptr;
    size_t n_wanted = 0;
    std::vector<Result<MessagePtr>> replies;
    size_t outstanding = 0;
    bool retried = false;  // units that were not loaded got a LoadUnit and a second round
    std::function<void(Read&)> finish;
  };
  struct Pending {
    std::shared_ptr<Read> read;
    size_t index;  // into replies
  };
  std::deque<Pending> queue;
  size_t in_flight = 0;

  // Children running `systemctl stop`, by pid.
  struct Child {
    int pidfd = -1;
    sd_event_source* source = nullptr;
    std::string unit;
    Done<Result<void>> done;
  };
  std::map<pid_t, std::unique_ptr<Child>> children;

  ~Impl() {
    for (auto& [pid, c] : children) {
      sd_event_source_disable_unref(c->source);
      ::close(c->pidfd);
    }
    for (auto* s : slots) sd_bus_slot_unref(s);
    sd_bus_flush_close_unref(bus);
  }

  void enqueue(const std::shared_ptr<Read>& read, size_t first, size_t count) {
    for (size_t i = first; i < first + count; ++i) {
      queue.push_back({read, i});
      ++read->outstanding;
    }
    pump();
  }

  // Issues queued calls while fewer than kWindow are in flight.
  void pump() {
    while (!queue.empty() && in_flight < kWindow) {
      Pending p = std::move(queue.front());
      queue.pop_front();
      const Read& r = *p.read;
      const std::string& unit = r.names[p.index / r.n_wanted];
      const Wanted& w = r.wanted[p.index % r.n_wanted];
      auto* ctx = new Pending(p);
      sd_bus_slot* slot = nullptr;
      int rc =
          sd_bus_call_method_async(bus, &slot, kSystemd, unit_path(unit).c_str(), "org.freedesktop.DBus.Properties",
                                   "Get", &Impl::on_get_reply, ctx, "ss", w.interface, w.property);
      if (rc < 0) {
        delete ctx;
        p.read->replies[p.index] = Error::from_errno("cannot ask systemd for " + unit, -rc);
        done_one(p.read);
        continue;
      }
      float_slot<Pending>(slot);
      ++in_flight;
    }
  }

  static int on_get_reply(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* p = static_cast<Pending*>(userdata);
    Impl* self = p->read->owner;
    --self->in_flight;
    if (auto e = reply_error(m, "cannot read " + std::string(p->read->wanted[p->index % p->read->n_wanted].property) +
                                    " of " + p->read->names[p->index / p->read->n_wanted])) {
      p->read->replies[p->index] = std::move(*e);
    } else {
      MessagePtr reply;
      reply.m = sd_bus_message_ref(m);
      p->read->replies[p->index] = std::move(reply);
    }
    auto read = p->read;  // the slot (and p) may go once this returns
    self->done_one(read);
    self->pump();
    return 1;
  }

  void done_one(const std::shared_ptr<Read>& read) {
    if (--read->outstanding > 0) return;
    if (!read->retried && load_missing(read)) return;
    read->finish(*read);
  }

  // Units whose LoadState could not be read have no object yet (not loaded): LoadUnit creates it, and their
  // properties are asked once more. Returns whether any were.
  bool load_missing(const std::shared_ptr<Read>& read) {
    read->retried = true;
    std::vector<size_t> units;
    for (size_t u = 0; u < read->names.size(); ++u)
      if (!read->replies[u * read->n_wanted]) units.push_back(u);
    if (units.empty()) return false;
    read->outstanding = units.size();
    for (size_t u : units) {
      struct Load {
        Impl* self;
        std::shared_ptr<Read> read;
        size_t unit;
      };
      auto* ctx = new Load{this, read, u};
      sd_bus_slot* slot = nullptr;
      int rc = sd_bus_call_method_async(
          bus, &slot, kSystemd, kManagerPath, kManager, "LoadUnit",
          [](sd_bus_message* m, void* userdata, sd_bus_error*) -> int {
            auto* l = static_cast<Load*>(userdata);
            auto r = l->read;
            size_t first = l->unit * r->n_wanted;
            if (auto e = reply_error(m, "systemd cannot load unit " + r->names[l->unit])) {
              r->replies[first] = std::move(*e);
            } else {
              l->self->enqueue(r, first, r->n_wanted);  // asked again, counted as outstanding again
            }
            l->self->done_one(r);
            return 1;
          },
          ctx, "s", read->names[u].c_str());
      if (rc < 0) {
        delete ctx;
        read->replies[u * read->n_wanted] = Error::from_errno("cannot ask systemd to load " + read->names[u], -rc);
        done_one(read);
        continue;
      }
      float_slot<Load>(slot);
    }
    return true;
  }

  template <class T, size_t N, class OnProperty>
  void read_units(std::vector<std::string> names, const Wanted (&wanted)[N], OnProperty on_property,
                  Done<std::vector<Result<T>>> done) {
    auto read = std::make_shared<Read>();
    read->owner = this;
    read->names = std::move(names);
    read->wanted = wanted;
    read->n_wanted = N;
    for (size_t i = 0; i < read->names.size() * N; ++i) read->replies.emplace_back(Error{"not read", EIO});
    read->finish = [on_property, done = std::move(done)](Read& r) {
      std::vector<Result<T>> out;
      out.reserve(r.names.size());
      for (size_t u = 0; u < r.names.size(); ++u) out.push_back(parse_unit<T>(r, u, on_property));
      r.replies.clear();  // the messages go before the daemon runs on
      done(std::move(out));
    };
    if (read->names.empty()) {
      // Still answered from the loop, never from within this call.
      defer([read] { read->finish(*read); });
      return;
    }
    enqueue(read, 0, read->replies.size());
  }

  template <class T, class OnProperty>
  static Result<T> parse_unit(Read& r, size_t u, OnProperty on_property) {
    T unit;
    unit.name = r.names[u];
    for (size_t k = 0; k < r.n_wanted; ++k) {
      auto& reply = r.replies[u * r.n_wanted + k];
      const char* property = r.wanted[k].property;
      if (!reply)
        return Error{
            "cannot read " + std::string(property) + " of " + unit.name + " from systemd: " + reply.error().message,
            EIO};
      sd_bus_message* m = reply->m;
      const char* contents = nullptr;
      int rc = sd_bus_message_peek_type(m, nullptr, &contents);
      if (rc >= 0) rc = sd_bus_message_enter_container(m, 'v', contents);
      if (rc >= 0) rc = on_property(property, contents ? contents : "", m, unit);
      if (rc < 0) return Error::from_errno("cannot parse " + std::string(property) + " of " + unit.name, -rc);
      // LoadState comes first: a unit that is not loaded has nothing else worth reading.
      if (k == 0 && unit.load_state != "loaded")
        return Error{"unit " + unit.name + " is " + unit.load_state + ", not loaded", ENOENT};
    }
    return unit;
  }

  // Runs `f` from the loop, soon (an sd-event defer source that goes after it ran).
  void defer(std::function<void()> f) {
    auto* holder = new std::function<void()>(std::move(f));
    sd_event_source* s = nullptr;
    int rc = sd_event_add_defer(
        event, &s,
        [](sd_event_source* src, void* p) {
          auto* fn = static_cast<std::function<void()>*>(p);
          (*fn)();
          sd_event_source_disable_unref(src);
          return 0;
        },
        holder);
    if (rc < 0) {
      delete holder;
      return;
    }
    sd_event_source_set_destroy_callback(s, [](void* p) { delete static_cast<std::function<void()>*>(p); });
  }

  void call_manager(const char* method, const std::string& unit, Done<Result<void>> done) {
    struct Call {
      std::string what;
      Done<Result<void>> done;
    };
    auto* ctx = new Call{"systemd refused to " +
                             std::string(method == std::string("StopUnit")    ? "stop "
                                         : method == std::string("StartUnit") ? "start "
                                                                              : "restart ") +
                             unit,
                         std::move(done)};
    sd_bus_slot* slot = nullptr;
    int rc = sd_bus_call_method_async(
        bus, &slot, kSystemd, kManagerPath, kManager, method,
        [](sd_bus_message* m, void* userdata, sd_bus_error*) -> int {
          auto* c = static_cast<Call*>(userdata);
          auto answer = std::move(c->done);
          if (auto e = reply_error(m, c->what)) {
            answer(*e);
          } else {
            answer(Result<void>{});
          }
          return 1;
        },
        ctx, "ss", unit.c_str(), "replace");
    if (rc < 0) {
      Error e = Error::from_errno(ctx->what, -rc);
      auto d = std::move(ctx->done);
      delete ctx;
      defer([d = std::move(d), e] { d(e); });
      return;
    }
    float_slot<Call>(slot);
  }

  // `systemctl stop --no-block UNIT` from an argv (no shell), its exit taken from its pidfd in the loop.
  void systemctl_stop(const std::string& unit, Done<Result<void>> done) {
    const char* argv[] = {"systemctl", "stop", "--no-block", unit.c_str(), nullptr};
    pid_t pid = 0;
    int r = posix_spawnp(&pid, "systemctl", nullptr, nullptr, const_cast<char**>(argv), environ);
    if (r != 0) {
      Error e = Error::from_errno("cannot run systemctl stop --no-block " + unit, r);
      defer([done = std::move(done), e] { done(e); });
      return;
    }
    int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (pidfd < 0) {
      // No pidfd (old kernel): wait for it here; systemctl --no-block returns at once.
      int status = 0;
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      Result<void> res = WIFEXITED(status) && WEXITSTATUS(status) == 0
                             ? Result<void>{}
                             : Result<void>{Error{"systemctl stop --no-block " + unit + " failed", EIO}};
      defer([done = std::move(done), res] { done(res); });
      return;
    }
    auto child = std::make_unique<Child>();
    child->pidfd = pidfd;
    child->unit = unit;
    child->done = std::move(done);
    auto* raw = child.get();
    struct Ctx {
      Impl* self;
      pid_t pid;
    };
    auto* ctx = new Ctx{this, pid};
    int rc = sd_event_add_child_pidfd(
        event, &raw->source, pidfd, WEXITED,
        [](sd_event_source*, const siginfo_t* si, void* userdata) -> int {
          auto* c = static_cast<Ctx*>(userdata);
          Impl* self = c->self;
          auto it = self->children.find(c->pid);
          if (it == self->children.end()) return 0;
          auto finished = std::move(it->second);
          self->children.erase(it);
          bool ok = si->si_code == CLD_EXITED && si->si_status == 0;
          auto answer = std::move(finished->done);
          std::string name = finished->unit;
          int status = si->si_status;
          sd_event_source_disable_unref(finished->source);  // frees ctx (and si with it) through the destroy callback
          ::close(finished->pidfd);
          if (ok) {
            answer(Result<void>{});
          } else {
            answer(Error{"systemctl stop --no-block " + name + " failed (status " + std::to_string(status) + ")", EIO});
          }
          return 0;
        },
        ctx);
    if (rc < 0) {
      delete ctx;
      ::close(pidfd);
      int status = 0;
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      Error e = Error::from_errno("cannot watch systemctl", -rc);
      defer([d = std::move(raw->done), e] { d(e); });
      return;
    }
    sd_event_source_set_destroy_callback(raw->source, [](void* p) { delete static_cast<Ctx*>(p); });
    children.emplace(pid, std::move(child));
  }

  // ---- signals ----

  bool from_systemd(sd_bus_message* m) {
    if (gate.accept(sd_bus_message_get_sender(m), sd_bus_message_get_destination(m))) return true;
    ++dropped_signals;
    return false;
  }

  static int on_properties_changed(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* self = static_cast<Impl*>(userdata);
    if (!self->from_systemd(m)) return 0;
    char* unit = nullptr;
    if (sd_bus_path_decode(sd_bus_message_get_path(m), kUnitPrefix, &unit) > 0 && unit) {
      UnitEvent e{UnitEvent::Kind::kChanged, unit, {}, parse_unit_changes(m)};
      free(unit);
      if (!e.changes || !e.changes->empty()) self->events.push_back(std::move(e));
    }
    return 0;
  }

  static int on_unit_new(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* self = static_cast<Impl*>(userdata);
    const char* unit = nullptr;
    if (self->from_systemd(m) && sd_bus_message_read(m, "s", &unit) >= 0 && unit)
      self->events.push_back({UnitEvent::Kind::kNew, unit, {}});
    return 0;
  }

  static int on_unit_removed(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* self = static_cast<Impl*>(userdata);
    const char* unit = nullptr;
    if (self->from_systemd(m) && sd_bus_message_read(m, "s", &unit) >= 0 && unit)
      self->events.push_back({UnitEvent::Kind::kRemoved, unit, {}});
    return 0;
  }

  static int on_reloading(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* self = static_cast<Impl*>(userdata);
    int starting = 0;
    // Reloading(false) is sent when a daemon-reload is done: units may have appeared, changed or gone.
    if (self->from_systemd(m) && sd_bus_message_read(m, "b", &starting) >= 0 && !starting)
      self->events.push_back({UnitEvent::Kind::kReloaded, {}, {}});
    return 0;
  }

  static int on_job_removed(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* self = static_cast<Impl*>(userdata);
    uint32_t id = 0;
    const char *job = nullptr, *unit = nullptr, *result = nullptr;
    if (self->from_systemd(m) && sd_bus_message_read(m, "uoss", &id, &job, &unit, &result) >= 0 && unit && result) {
      UnitEvent e{UnitEvent::Kind::kJobDone, unit, result};
      self->events.push_back(std::move(e));
    }
    return 0;
  }

  static int on_name_owner_changed(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* self = static_cast<Impl*>(userdata);
    const char *name = nullptr, *old_owner = nullptr, *new_owner = nullptr;
    if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0) return 0;
    if (!self->gate.on_owner_changed(sd_bus_message_get_sender(m), sd_bus_message_get_destination(m), name, new_owner))
      return 0;
    // PID 1 reconnected (daemon-reexec): what it says now comes from its new name; read every pool again.
    if (new_owner && *new_owner) self->events.push_back({UnitEvent::Kind::kReloaded, {}, {}});
    return 0;
  }
};

SdBus::SdBus(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SdBus::~SdBus() = default;

Result<std::unique_ptr<SdBus>> SdBus::open(sd_event* event, StopVia stop_via) {
  auto impl = std::make_unique<Impl>();
  impl->event = event;
  impl->stop_via = stop_via;
  int r = sd_bus_open_system(&impl->bus);
  if (r < 0) return Error::from_errno("cannot connect to the system bus (is dbus running?)", -r);
  struct Match {
    const char* sender;
    const char* path;
    const char* interface;
    const char* member;
    sd_bus_message_handler_t handler;
  };
  const Match matches[] = {
      {kSystemd, nullptr, "org.freedesktop.DBus.Properties", "PropertiesChanged", &Impl::on_properties_changed},
      {kSystemd, kManagerPath, kManager, "UnitNew", &Impl::on_unit_new},
      {kSystemd, kManagerPath, kManager, "UnitRemoved", &Impl::on_unit_removed},
      {kSystemd, kManagerPath, kManager, "Reloading", &Impl::on_reloading},
      {kSystemd, kManagerPath, kManager, "JobRemoved", &Impl::on_job_removed},
      {kDBus, "/org/freedesktop/DBus", kDBus, "NameOwnerChanged", &Impl::on_name_owner_changed},
  };
  for (const auto& mt : matches) {
    sd_bus_slot* slot = nullptr;
    r = sd_bus_match_signal(impl->bus, &slot, mt.sender, mt.path, mt.interface, mt.member, mt.handler, impl.get());
    if (r < 0) return Error::from_errno(std::string("cannot subscribe to ") + mt.member + " signals", -r);
    impl->slots.push_back(slot);
  }
  // Who systemd is on this bus: only its unique name's signals are taken. Early in boot PID 1 may not have
  // connected to a freshly started bus yet: its name is awaited (NameOwnerChanged), for a bounded time.
  auto owner = name_owner(impl->bus);
  for (uint64_t deadline = now_usec() + 30'000'000; !owner && now_usec() < deadline;) {
    sd_bus_wait(impl->bus, 200'000);
    while (sd_bus_process(impl->bus, nullptr) > 0) {
    }
    owner = impl->gate.owner().empty() ? name_owner(impl->bus) : std::optional<std::string>(impl->gate.owner());
  }
  if (!owner)
    return Error{"systemd is not on the system bus (no owner of org.freedesktop.systemd1 within 30 s)", ENOENT};
  impl->gate.set_owner(*owner);
  BusError err;
  r = sd_bus_call_method(impl->bus, kSystemd, kManagerPath, kManager, "Subscribe", &err.e, nullptr, "");
  if (r < 0) return bus_error("cannot subscribe to systemd", err, r);
  r = sd_bus_attach_event(impl->bus, event, SD_EVENT_PRIORITY_NORMAL);
  if (r < 0) return Error::from_errno("cannot attach the bus to the event loop", -r);
  // Without the bus idlepoold is blind to systemd: the loop ends and systemd restarts the daemon.
  sd_bus_set_exit_on_disconnect(impl->bus, 1);
  return std::unique_ptr<SdBus>(new SdBus(std::move(impl)));
}

void SdBus::list_units(std::vector<std::string> patterns, Done<Result<std::vector<std::string>>> done) {
  MessagePtr call;
  int r = sd_bus_message_new_method_call(impl_->bus, &call.m, kSystemd, kManagerPath, kManager, "ListUnitsByPatterns");
  if (r >= 0) r = sd_bus_message_append_strv(call.m, nullptr);  // any state
  std::vector<char*> strv;
  strv.reserve(patterns.size() + 1);
  for (auto& p : patterns) strv.push_back(p.data());
  strv.push_back(nullptr);
  if (r >= 0) r = sd_bus_message_append_strv(call.m, strv.data());
  if (r < 0) {
    Error e = Error::from_errno("cannot build a ListUnitsByPatterns call", -r);
    impl_->defer([done = std::move(done), e] { done(e); });
    return;
  }
  auto* ctx = new Done<Result<std::vector<std::string>>>(std::move(done));
  sd_bus_slot* slot = nullptr;
  r = sd_bus_call_async(
      impl_->bus, &slot, call.m,
      [](sd_bus_message* m, void* userdata, sd_bus_error*) -> int {
        auto answer = std::move(*static_cast<Done<Result<std::vector<std::string>>>*>(userdata));
        if (auto e = reply_error(m, "systemd cannot list units")) {
          answer(*e);
          return 1;
        }
        std::vector<std::string> out;
        int rr = sd_bus_message_enter_container(m, 'a', "(ssssssouso)");
        const char *name, *desc, *load, *active, *sub, *following, *path, *job_type, *job_path;
        uint32_t job_id;
        while (rr >= 0 && (rr = sd_bus_message_read(m, "(ssssssouso)", &name, &desc, &load, &active, &sub, &following,
                                                    &path, &job_id, &job_type, &job_path)) > 0)
          out.emplace_back(name);
        if (rr < 0) {
          answer(Error::from_errno("cannot read systemd's unit list", -rr));
        } else {
          answer(std::move(out));
        }
        return 1;
      },
      ctx, 0);
  if (r < 0) {
    auto d = std::move(*ctx);
    delete ctx;
    Error e = Error::from_errno("cannot ask systemd for its units", -r);
    impl_->defer([d = std::move(d), e] { d(e); });
    return;
  }
  float_slot<Done<Result<std::vector<std::string>>>>(slot);
}

void SdBus::read_services(std::vector<std::string> names, Done<std::vector<Result<ServiceUnit>>> done) {
  impl_->read_units<ServiceUnit>(std::move(names), kServiceProperties, &service_property, std::move(done));
}

void SdBus::read_sockets(std::vector<std::string> names, Done<std::vector<Result<SocketUnit>>> done) {
  impl_->read_units<SocketUnit>(std::move(names), kSocketProperties, &socket_property, std::move(done));
}

void SdBus::stop(const std::string& name, Done<Result<void>> done) {
  if (impl_->stop_via == StopVia::kSystemctl) return impl_->systemctl_stop(name, std::move(done));
  impl_->call_manager("StopUnit", name, std::move(done));
}

void SdBus::restart(const std::string& name, Done<Result<void>> done) {
  impl_->call_manager("RestartUnit", name, std::move(done));
}

void SdBus::start(const std::string& name, Done<Result<void>> done) {
  impl_->call_manager("StartUnit", name, std::move(done));
}

std::vector<UnitEvent> SdBus::take_events() { return std::exchange(impl_->events, {}); }

void SdBus::set_stop_via(StopVia via) { impl_->stop_via = via; }

uint64_t SdBus::dropped_signals() const { return impl_->dropped_signals; }

size_t SdBus::calls_in_flight() const { return impl_->in_flight + impl_->queue.size(); }

}  // namespace idlepool::sys
