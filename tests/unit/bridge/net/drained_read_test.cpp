// async_read_drained: after a short read the next read waits for epoll
// without a recv that could only fail, and it still sees everything: data
// that arrives later, data left over after a full buffer, data that came
// before the read was started, end of stream, and cancellation.
#include "bridge/net/drained_read.hpp"

#include <gtest/gtest.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/connect_pair.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/write.hpp>

#include <atomic>
#include <dlfcn.h>
#include <optional>
#include <string>
#include <sys/socket.h>

// Counts the recv calls made on one descriptor (Asio reads with recv); all
// calls go on to the C library's.
namespace {
std::atomic<int> watched_fd{-1};
std::atomic<int> recv_calls{0};
} // namespace

extern "C" ssize_t recv(int fd, void* buf, size_t n, int flags) {
    using fn = ssize_t (*)(int, void*, size_t, int);
    static fn next = reinterpret_cast<fn>(dlsym(RTLD_NEXT, "recv"));
    if (fd == watched_fd.load()) ++recv_calls;
    return next(fd, buf, n, flags);
}

namespace trestle::net {
namespace {

namespace asio = boost::asio;
using local = asio::local::stream_protocol;
using boost::system::error_code;

struct drained_read_test : ::testing::Test {
    asio::io_context io;
    local::socket a{io}, b{io};
    char buf[16];

    void SetUp() override {
        asio::local::connect_pair(a, b);
        watched_fd = a.native_handle();
        recv_calls = 0;
    }
    void TearDown() override { watched_fd = -1; }

    void send(const std::string& s) { asio::write(b, asio::buffer(s)); }

    struct result {
        error_code ec;
        std::size_t n = 0;
    };
    // Starts a read of a; `plain` uses Asio's own async_read_some.
    std::optional<result>& start(std::optional<result>& out, bool plain = false) {
        out.reset();
        auto done = [&out](error_code ec, std::size_t n) { out = result{ec, n}; };
        if (plain) a.async_read_some(asio::buffer(buf), done);
        else async_read_drained(a, asio::buffer(buf), done);
        return out;
    }
    // Runs the reactor until the read completes, for at most two seconds.
    void finish(std::optional<result>& out) {
        io.restart();
        for (int i = 0; i < 200 && !out; ++i) io.run_one_for(std::chrono::milliseconds(10));
        ASSERT_TRUE(out) << "the read never completed";
    }
    std::string got(const result& r) { return std::string(buf, r.n); }
};

TEST_F(drained_read_test, after_a_short_read_the_next_waits_for_epoll_without_a_recv) {
    std::optional<result> r;
    send("hello");
    finish(start(r));
    EXPECT_EQ(got(*r), "hello");

    recv_calls = 0;
    start(r);
    io.restart();
    io.poll();
    EXPECT_FALSE(r);
    EXPECT_EQ(recv_calls, 0);   // Asio's own read would have tried one here

    send("world");
    finish(r);
    EXPECT_EQ(got(*r), "world");
    EXPECT_EQ(recv_calls, 1);
}

TEST_F(drained_read_test, asio_own_read_tries_a_recv_that_fails) {
    // The contrast that shows the counter sees Asio's reads.
    std::optional<result> r;
    send("hello");
    finish(start(r, true));
    recv_calls = 0;
    start(r, true);
    io.restart();
    io.poll();
    EXPECT_FALSE(r);
    EXPECT_EQ(recv_calls, 1);
    a.cancel();
    finish(r);
}

TEST_F(drained_read_test, a_full_buffer_leaves_the_rest_to_be_read_at_once) {
    std::optional<result> r;
    send(std::string(16, 'a') + "tail");
    finish(start(r));
    EXPECT_EQ(r->n, 16u);
    start(r);
    io.restart();
    io.poll();
    ASSERT_TRUE(r);
    EXPECT_EQ(got(*r), "tail");
}

TEST_F(drained_read_test, data_that_came_between_two_reads_is_not_missed) {
    std::optional<result> r;
    send("one");
    finish(start(r));
    send("two");   // before the next read starts, and before the reactor looks
    finish(start(r));
    EXPECT_EQ(got(*r), "two");
    send("three");
    io.restart();
    io.poll();   // the reactor sees the edge with no read waiting
    finish(start(r));
    EXPECT_EQ(got(*r), "three");
}

TEST_F(drained_read_test, end_of_stream_and_cancellation_complete_the_read) {
    std::optional<result> r;
    start(r);
    a.cancel();
    finish(r);
    EXPECT_EQ(r->ec, asio::error::operation_aborted);

    asio::cancellation_signal sig;
    r.reset();
    async_read_drained(a, asio::buffer(buf),
                       asio::bind_cancellation_slot(sig.slot(), [&r](error_code ec, std::size_t n) {
                           r = result{ec, n};
                       }));
    io.restart();
    io.poll();
    EXPECT_FALSE(r);
    sig.emit(asio::cancellation_type::terminal);
    finish(r);
    EXPECT_EQ(r->ec, asio::error::operation_aborted);

    b.close();
    finish(start(r));
    EXPECT_EQ(r->ec, asio::error::eof);
}

} // namespace
} // namespace trestle::net
