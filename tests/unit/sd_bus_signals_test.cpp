// systemd's PropertiesChanged signals as idlepoold reads them: real sd-bus messages (built on a private connection,
// never sent), the values they carry, when they call for a read, and malformed ones, which never crash and make the
// unit be read rather than guessed.
#include "sd_bus_signals.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>

namespace idlepool::sys {
namespace {

using namespace std::chrono_literals;

class SignalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds_), 0);
    ASSERT_GE(sd_bus_new(&bus_), 0);
    ASSERT_GE(sd_bus_set_fd(bus_, fds_[0], fds_[0]), 0);
    ASSERT_GE(sd_bus_start(bus_), 0);
  }
  void TearDown() override {
    sd_bus_message_unref(m_);
    sd_bus_close_unref(bus_);
    ::close(fds_[1]);
  }
  // A PropertiesChanged signal whose body `append` writes; sealed and rewound, as a received one would be.
  sd_bus_message* signal(const std::function<void(sd_bus_message*)>& append) {
    EXPECT_GE(sd_bus_message_new_signal(bus_, &m_, "/org/freedesktop/systemd1/unit/php_2dfpm_40a_2eservice",
                                        "org.freedesktop.DBus.Properties", "PropertiesChanged"),
              0);
    append(m_);
    EXPECT_GE(sd_bus_message_seal(m_, 1, 0), 0);
    EXPECT_GE(sd_bus_message_rewind(m_, 1), 0);
    return m_;
  }
  int fds_[2] = {-1, -1};
  sd_bus* bus_ = nullptr;
  sd_bus_message* m_ = nullptr;
};

TEST_F(SignalTest, CarriedValuesAreTakenAsTheyAre) {
  auto c = parse_unit_changes(signal([](sd_bus_message* m) {
    sd_bus_message_append(m, "s", "org.freedesktop.systemd1.Unit");
    sd_bus_message_append(m, "a{sv}", 5, "ActiveState", "s", "active", "SubState", "s", "running",
                          "ActiveEnterTimestampMonotonic", "t", uint64_t{7'000'000}, "Job", "(uo)", 0u,
                          "/org/freedesktop/systemd1/job/0", "Description", "s", "not ours");
    sd_bus_message_append(m, "as", 0);
  }));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->active_state, "active");
  EXPECT_EQ(c->sub_state, "running");
  EXPECT_EQ(c->active_enter, MonoTime(7s));
  EXPECT_EQ(c->job_pending, false);
  EXPECT_FALSE(c->needs_read);
  EXPECT_FALSE(c->empty());
}

TEST_F(SignalTest, MainPidOnTheServiceInterface) {
  auto c = parse_unit_changes(signal([](sd_bus_message* m) {
    sd_bus_message_append(m, "s", "org.freedesktop.systemd1.Service");
    sd_bus_message_append(m, "a{sv}", 2, "MainPID", "u", 4242u, "StatusText", "s", "Processes active: 0");
    sd_bus_message_append(m, "as", 1, "ExecStart");  // its runtime status: says nothing about the command line
  }));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->main_pid, 4242u);
  EXPECT_FALSE(c->needs_read);
}

TEST_F(SignalTest, NothingIdlepoolReadsIsEmpty) {
  auto c = parse_unit_changes(signal([](sd_bus_message* m) {
    sd_bus_message_append(m, "s", "org.freedesktop.systemd1.Service");
    sd_bus_message_append(m, "a{sv}", 1, "StatusText", "s", "Processes active: 0, idle: 1");
    sd_bus_message_append(m, "as", 1, "ExecStart");
  }));
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->empty()) << "php-fpm's STATUS= every 10 s must cost nothing";
}

TEST_F(SignalTest, WhatCannotBeAppliedCallsForARead) {
  auto cgroup = parse_unit_changes(signal([](sd_bus_message* m) {
    sd_bus_message_append(m, "s", "org.freedesktop.systemd1.Service");
    sd_bus_message_append(m, "a{sv}", 1, "ControlGroup", "s", "/system.slice/php-fpm@a.service");
    sd_bus_message_append(m, "as", 0);
  }));
  ASSERT_TRUE(cgroup);
  EXPECT_TRUE(cgroup->needs_read);
  sd_bus_message_unref(m_);
  m_ = nullptr;
  auto invalidated = parse_unit_changes(signal([](sd_bus_message* m) {
    sd_bus_message_append(m, "s", "org.freedesktop.systemd1.Unit");
    sd_bus_message_append(m, "a{sv}", 0);
    sd_bus_message_append(m, "as", 1, "ActiveState");
  }));
  ASSERT_TRUE(invalidated);
  EXPECT_TRUE(invalidated->needs_read) << "a state invalidated without its value";
}

TEST_F(SignalTest, GarbageIsReadNotGuessed) {
  // A known property with an unexpected type.
  auto wrong_type = parse_unit_changes(signal([](sd_bus_message* m) {
    sd_bus_message_append(m, "s", "org.freedesktop.systemd1.Unit");
    sd_bus_message_append(m, "a{sv}", 2, "ActiveState", "u", 3u, "SubState", "s", "running");
    sd_bus_message_append(m, "as", 0);
  }));
  ASSERT_TRUE(wrong_type);
  EXPECT_TRUE(wrong_type->needs_read);
  EXPECT_FALSE(wrong_type->active_state);
  sd_bus_message_unref(m_);
  m_ = nullptr;
  // A timestamp no nanosecond clock holds (found by fuzz_unit_signals: it overflowed converting to nanoseconds).
  auto far = parse_unit_changes(signal([](sd_bus_message* m) {
    sd_bus_message_append(m, "s", "org.freedesktop.systemd1.Unit");
    sd_bus_message_append(m, "a{sv}", 1, "ActiveEnterTimestampMonotonic", "t", uint64_t{1} << 62);
    sd_bus_message_append(m, "as", 0);
  }));
  EXPECT_FALSE(far) << "unparsable: the caller reads the unit";
  sd_bus_message_unref(m_);
  m_ = nullptr;
  // Not a PropertiesChanged body at all.
  auto not_a_signal = parse_unit_changes(signal([](sd_bus_message* m) { sd_bus_message_append(m, "ui", 1u, -1); }));
  EXPECT_FALSE(not_a_signal) << "unparsable: the caller reads the unit";
  sd_bus_message_unref(m_);
  m_ = nullptr;
  auto truncated = parse_unit_changes(
      signal([](sd_bus_message* m) { sd_bus_message_append(m, "s", "org.freedesktop.systemd1.Unit"); }));
  EXPECT_FALSE(truncated);
}

// A site user may send signals on the system bus: with systemd's name as the match's sender, addressed to idlepoold,
// or broadcast from their own connection. Only PID 1's broadcasts count.
TEST(SignalGate, OnlyPid1sBroadcastsCount) {
  SignalGate gate;
  EXPECT_FALSE(gate.accept(":1.0", nullptr)) << "nobody is systemd until the bus says who is";
  gate.set_owner(":1.0");
  EXPECT_TRUE(gate.accept(":1.0", nullptr));
  EXPECT_FALSE(gate.accept(":1.0", ":1.77")) << "systemd broadcasts: a signal addressed to us is not its";
  EXPECT_FALSE(gate.accept(":1.42", nullptr)) << "another connection's broadcast";
  EXPECT_FALSE(gate.accept(":1.42", ":1.77")) << "another connection's unicast";
  EXPECT_FALSE(gate.accept("org.freedesktop.systemd1", nullptr)) << "the bus stamps unique names, never this";
  EXPECT_FALSE(gate.accept(nullptr, nullptr));
}

TEST(SignalGate, FollowsSystemdsNameOnlyFromTheBusItself) {
  SignalGate gate;
  gate.set_owner(":1.0");
  // A forged NameOwnerChanged from a site user's connection changes nothing.
  EXPECT_FALSE(gate.on_owner_changed(":1.42", nullptr, "org.freedesktop.systemd1", ":1.42"));
  EXPECT_FALSE(gate.on_owner_changed("org.freedesktop.DBus", ":1.77", "org.freedesktop.systemd1", ":1.42"));
  EXPECT_EQ(gate.owner(), ":1.0");
  EXPECT_FALSE(gate.on_owner_changed("org.freedesktop.DBus", nullptr, "org.example.other", ":1.9"));
  EXPECT_EQ(gate.owner(), ":1.0");
  // PID 1 re-executed and reconnected: the bus says so.
  EXPECT_TRUE(gate.on_owner_changed("org.freedesktop.DBus", nullptr, "org.freedesktop.systemd1", ":1.5"));
  EXPECT_EQ(gate.owner(), ":1.5");
  EXPECT_FALSE(gate.accept(":1.0", nullptr));
  EXPECT_TRUE(gate.accept(":1.5", nullptr));
}

}  // namespace
}  // namespace idlepool::sys
