// sd_notify without libsystemd (issue 11): the datagram reaches a socket
// bound at NOTIFY_SOCKET (a path or @abstract), the watchdog interval is half
// WATCHDOG_USEC and only for this pid, and the variables are unset.
#include "bridge/observability/sd_notify.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace trestle::sd {
namespace {

struct receiver {
    int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    std::string name;   // as NOTIFY_SOCKET spells it
    explicit receiver(bool abstract) {
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        std::string tag = "trestle-sd-test-" + std::to_string(::getpid());
        socklen_t len;
        if (abstract) {
            name = "@" + tag;
            std::memcpy(sa.sun_path + 1, tag.data(), tag.size());
            len = offsetof(sockaddr_un, sun_path) + 1 + tag.size();
        } else {
            name = (std::getenv("TMPDIR") ? std::string(std::getenv("TMPDIR")) : "/tmp") + "/" + tag;
            ::unlink(name.c_str());
            std::memcpy(sa.sun_path, name.data(), name.size());
            len = sizeof sa;
        }
        ::bind(fd, reinterpret_cast<sockaddr*>(&sa), len);
        timeval tv{5, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    ~receiver() {
        ::close(fd);
        if (name[0] == '/') ::unlink(name.c_str());
    }
    std::string next() {
        char buf[512];
        auto n = ::recv(fd, buf, sizeof buf, 0);
        return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
    }
};

TEST(sd_notify, path_socket_and_watchdog) {
    receiver r(false);
    ::setenv("NOTIFY_SOCKET", r.name.c_str(), 1);
    ::setenv("WATCHDOG_USEC", "3000000", 1);
    ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
    notifier n;
    n.from_environment();
    EXPECT_TRUE(n.enabled());
    EXPECT_EQ(n.watchdog_interval(), std::chrono::microseconds(1500000));
    EXPECT_EQ(std::getenv("NOTIFY_SOCKET"), nullptr);
    EXPECT_EQ(std::getenv("WATCHDOG_USEC"), nullptr);
    EXPECT_EQ(std::getenv("WATCHDOG_PID"), nullptr);
    n.send("READY=1\nSTATUS=x");
    EXPECT_EQ(r.next(), "READY=1\nSTATUS=x");
}

TEST(sd_notify, abstract_socket) {
    receiver r(true);
    ::setenv("NOTIFY_SOCKET", r.name.c_str(), 1);
    notifier n;
    n.from_environment();
    n.send("WATCHDOG=1");
    EXPECT_EQ(r.next(), "WATCHDOG=1");
    EXPECT_EQ(n.watchdog_interval().count(), 0);
}

TEST(sd_notify, watchdog_for_another_pid_is_off) {
    receiver r(false);
    ::setenv("NOTIFY_SOCKET", r.name.c_str(), 1);
    ::setenv("WATCHDOG_USEC", "3000000", 1);
    ::setenv("WATCHDOG_PID", "1", 1);
    notifier n;
    n.from_environment();
    EXPECT_EQ(n.watchdog_interval().count(), 0);
}

TEST(sd_notify, unset_or_bad_socket_is_disabled_and_send_is_harmless) {
    ::unsetenv("NOTIFY_SOCKET");
    notifier off;
    off.from_environment();
    EXPECT_FALSE(off.enabled());
    off.send("READY=1");
    ::setenv("NOTIFY_SOCKET", "relative/path", 1);
    notifier bad;
    bad.from_environment();
    EXPECT_FALSE(bad.enabled());
    // A socket nobody listens on: the send fails, quietly after one line.
    ::setenv("NOTIFY_SOCKET", "/nonexistent/trestle-notify", 1);
    notifier gone;
    gone.from_environment();
    EXPECT_TRUE(gone.enabled());
    gone.send("READY=1");
    gone.send("READY=1");
}

} // namespace
} // namespace trestle::sd
