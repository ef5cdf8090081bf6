// Listening sockets opened without Asio (for the supervisor): TCP on port 0,
// IPv6, unix (a stale socket file replaced, and its path kept for the
// unlink), close-on-exec, and the errors' kinds.
#include "bridge/net/listen_socket.hpp"
#include "bridge/net/server.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <filesystem>
#include <sys/socket.h>
#include <unistd.h>

namespace trestle::net {
namespace {

TEST(open_listener, tcp_port_zero_is_listening_and_cloexec) {
    listener l = open_listener("127.0.0.1:0", 16);
    ASSERT_GE(l.fd, 0);
    EXPECT_TRUE(l.shown.starts_with("http://127.0.0.1:")) << l.shown;
    EXPECT_NE(l.shown, "http://127.0.0.1:0");
    EXPECT_TRUE(l.unix_path.empty());
    int listening = 0;
    socklen_t len = sizeof listening;
    ASSERT_EQ(::getsockopt(l.fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len), 0);
    EXPECT_TRUE(listening);
    EXPECT_TRUE(::fcntl(l.fd, F_GETFD) & FD_CLOEXEC);
    EXPECT_EQ(describe_listener(l.fd), l.shown);
    ::close(l.fd);
}

TEST(open_listener, ipv6_loopback) {
    listener l;
    try {
        l = open_listener("[::1]:0", 16);
    } catch (const bind_error&) {
        GTEST_SKIP() << "no IPv6 loopback here";
    }
    EXPECT_TRUE(l.shown.starts_with("http://[::1]:")) << l.shown;
    ::close(l.fd);
}

TEST(open_listener, unix_replaces_a_stale_socket_file) {
    std::string path = (std::filesystem::temp_directory_path() / ("trestle-ls-" + std::to_string(::getpid()))).string();
    listener a = open_listener("unix:" + path, 16);
    ::close(a.fd);   // left behind, as by a crash
    listener b = open_listener("unix:" + path, 16);
    EXPECT_EQ(b.shown, "unix:" + path);
    EXPECT_EQ(b.unix_path, path);
    EXPECT_EQ(describe_listener(b.fd), "unix:" + path);
    ::close(b.fd);
    ::unlink(path.c_str());
}

TEST(open_listener, errors_name_the_option_that_gave_the_value) {
    for (const char* flag : {"--bind", "--metrics-bind"}) {
        try {
            open_listener("127.0.0.1:99999", 16, flag);
            FAIL();
        } catch (const bind_error& e) {
            EXPECT_EQ(std::string(e.what()), std::string(flag) + " 127.0.0.1:99999: bad port '99999'");
        }
    }
}

TEST(open_listener, errors_say_whether_the_value_or_the_bind_failed) {
    try {
        open_listener("127.0.0.1:99999", 16);
        FAIL();
    } catch (const bind_error& e) {
        EXPECT_TRUE(e.usage);
    }
    listener taken = open_listener("127.0.0.1:0", 16);
    std::string again = taken.shown.substr(std::string("http://").size());
    try {
        // SO_REUSEADDR does not allow two listeners on one port.
        open_listener(again, 16);
        FAIL();
    } catch (const bind_error& e) {
        EXPECT_FALSE(e.usage);
        EXPECT_NE(std::string(e.what()).find("cannot listen on"), std::string::npos);
    }
    ::close(taken.fd);
    try {
        open_listener("fd://3", 16);
        FAIL();
    } catch (const bind_error& e) {
        EXPECT_TRUE(e.usage);
    }
}

} // namespace
} // namespace trestle::net
