// Inherited listeners (issue 11): systemd's LISTEN_FDS protocol and the
// check that an fd://N descriptor is a listening stream socket.
#include "bridge/net/inherited_fds.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <cstdlib>
#include <fcntl.h>
#include <netinet/in.h>
#include <string>
#include <sys/socket.h>
#include <unistd.h>

namespace trestle::net {
namespace {

int tcp_socket(bool listening) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    if (listening) ::listen(fd, 4);
    // Above the numbers the tests dup2 onto, so closing it cannot close those.
    int high = ::fcntl(fd, F_DUPFD, 200);
    ::close(fd);
    return high;
}

TEST(check_listener, tells_what_is_wrong) {
    int l = tcp_socket(true), b = tcp_socket(false);
    int d = ::socket(AF_INET, SOCK_DGRAM, 0);
    int p[2];
    ASSERT_EQ(::pipe(p), 0);
    EXPECT_EQ(check_listener(l), "");
    EXPECT_EQ(check_listener(b), "not a listening socket");
    EXPECT_EQ(check_listener(d), "not a stream socket");
    EXPECT_EQ(check_listener(p[0]), "not a socket");
    EXPECT_EQ(check_listener(4000), "not an open descriptor");
    for (int fd : {l, b, d, p[0], p[1]}) ::close(fd);
}

TEST(take_listen_fds, another_pids_variables_are_ignored_and_unset) {
    ::setenv("LISTEN_PID", "1", 1);
    ::setenv("LISTEN_FDS", "1", 1);
    ::setenv("LISTEN_FDNAMES", "web", 1);
    EXPECT_TRUE(take_listen_fds().empty());
    EXPECT_EQ(std::getenv("LISTEN_PID"), nullptr);
    EXPECT_EQ(std::getenv("LISTEN_FDS"), nullptr);
    EXPECT_EQ(std::getenv("LISTEN_FDNAMES"), nullptr);
}

TEST(take_listen_fds, ours_are_taken_named_and_made_cloexec) {
    // Put two listeners at 3 and 4, saving whatever the test runner has there.
    int saved[2] = {::fcntl(3, F_DUPFD_CLOEXEC, 100), ::fcntl(4, F_DUPFD_CLOEXEC, 100)};
    int a = tcp_socket(true), b = tcp_socket(true);
    ASSERT_EQ(::dup2(a, 3), 3);   // dup2: FD_CLOEXEC clear, as systemd passes them
    ASSERT_EQ(::dup2(b, 4), 4);
    ::close(a);
    ::close(b);
    ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
    ::setenv("LISTEN_FDS", "2", 1);
    ::setenv("LISTEN_FDNAMES", "web:admin", 1);
    auto got = take_listen_fds();
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].fd, 3);
    EXPECT_EQ(got[0].name, "web");
    EXPECT_EQ(got[1].fd, 4);
    EXPECT_EQ(got[1].name, "admin");
    EXPECT_TRUE(::fcntl(3, F_GETFD) & FD_CLOEXEC);
    EXPECT_TRUE(::fcntl(4, F_GETFD) & FD_CLOEXEC);
    EXPECT_EQ(check_listener(3), "");
    EXPECT_EQ(std::getenv("LISTEN_FDS"), nullptr);
    for (int i = 0; i < 2; ++i) {
        if (saved[i] >= 0) {
            ::dup2(saved[i], 3 + i);
            ::close(saved[i]);
        } else {
            ::close(3 + i);
        }
    }
}

TEST(take_listen_fds, names_are_optional) {
    int saved = ::fcntl(3, F_DUPFD_CLOEXEC, 100);
    int a = tcp_socket(true);
    ASSERT_EQ(::dup2(a, 3), 3);
    ::close(a);
    ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
    ::setenv("LISTEN_FDS", "1", 1);
    ::unsetenv("LISTEN_FDNAMES");
    auto got = take_listen_fds();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].name, "");
    if (saved >= 0) {
        ::dup2(saved, 3);
        ::close(saved);
    } else {
        ::close(3);
    }
}

} // namespace
} // namespace trestle::net
