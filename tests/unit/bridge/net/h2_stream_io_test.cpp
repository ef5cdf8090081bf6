// An HTTP/2 stream as the byte stream a WebSocket runs on: what arrives is
// read, and only what is read is handed back to the window; writes queue for
// the connection and wait past the cap until it pulls; the end of input is
// EOF; a failed stream fails every operation; a teardown ends the output and
// a close resets the stream. No operation completes inside its own call.
#include "bridge/net/h2_stream_io.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/role.hpp>

#include <string>
#include <vector>

namespace trestle::net {
namespace {

namespace asio = boost::asio;
using boost::system::error_code;

struct recording_link final : h2_stream_link {
    std::size_t consumed = 0;
    int outputs = 0;
    int aborts = 0;
    void stream_consumed(std::int32_t id, std::size_t n) override {
        EXPECT_EQ(id, 7);
        consumed += n;
    }
    void stream_output(std::int32_t) override { ++outputs; }
    void stream_answer(std::int32_t, const ws_command&) override {}
    void stream_abort(std::int32_t) override { ++aborts; }
};

struct h2_stream_io_test : ::testing::Test {
    asio::io_context io;
    recording_link link;
    h2_stream_io s{io.get_executor(), &link, 7};

    std::string pull_all() {
        std::string out;
        std::uint8_t buf[4096];
        while (std::size_t n = s.pull(buf, sizeof buf)) out.append(reinterpret_cast<char*>(buf), n);
        return out;
    }
};

TEST_F(h2_stream_io_test, a_read_waits_for_data_and_consumes_only_what_it_took) {
    char buf[4];
    bool done = false;
    error_code got_ec;
    std::size_t got = 0;
    s.async_read_some(asio::buffer(buf), [&](error_code ec, std::size_t n) {
        done = true;
        got_ec = ec;
        got = n;
    });
    io.poll();
    EXPECT_FALSE(done);
    s.deliver("abcdefgh", 8);
    io.poll();
    ASSERT_TRUE(done);
    EXPECT_FALSE(got_ec);
    EXPECT_EQ(got, 4u);
    EXPECT_EQ(std::string(buf, 4), "abcd");
    EXPECT_EQ(link.consumed, 4u);   // the other four still hold the window
    EXPECT_EQ(s.unread(), 4u);
}

TEST_F(h2_stream_io_test, data_already_there_completes_through_the_executor) {
    s.deliver("xy", 2);
    bool done = false;
    char buf[8];
    s.async_read_some(asio::buffer(buf), [&](error_code, std::size_t) { done = true; });
    EXPECT_FALSE(done);   // not inside the call
    io.poll();
    EXPECT_TRUE(done);
}

TEST_F(h2_stream_io_test, the_end_of_input_is_eof_after_the_data) {
    s.deliver("ab", 2);
    s.end_input();
    std::string all(2, '\0');
    error_code ec;
    asio::async_read(s, asio::buffer(all), [&](error_code e, std::size_t) { ec = e; });
    io.poll();
    EXPECT_FALSE(ec);
    EXPECT_EQ(all, "ab");
    char more[1];
    s.async_read_some(asio::buffer(more), [&](error_code e, std::size_t) { ec = e; });
    io.restart();
    io.poll();
    EXPECT_EQ(ec, asio::error::eof);
}

TEST_F(h2_stream_io_test, writes_queue_and_wait_past_the_cap_until_pulled) {
    std::string big(h2_stream_io::out_cap + 1000, 'w');
    bool first = false;
    s.async_write_some(asio::buffer(big), [&](error_code ec, std::size_t n) {
        EXPECT_FALSE(ec);
        EXPECT_EQ(n, big.size());
        first = true;
    });
    io.poll();
    EXPECT_TRUE(first);
    EXPECT_EQ(link.outputs, 1);
    bool second = false;
    s.async_write_some(asio::buffer("more", 4), [&](error_code, std::size_t) { second = true; });
    io.restart();
    io.poll();
    EXPECT_FALSE(second);   // over the cap: waits for the peer's window
    EXPECT_EQ(pull_all(), big);
    io.restart();
    io.poll();
    EXPECT_TRUE(second);
    EXPECT_EQ(pull_all(), "more");
}

TEST_F(h2_stream_io_test, discarded_writes_never_reach_the_stream) {
    s.discard_writes(true);
    std::size_t n = 0;
    asio::async_write(s, asio::buffer("HTTP/1.1 101 Switching Protocols\r\n\r\n", 36),
                      [&](error_code, std::size_t k) { n = k; });
    io.poll();
    EXPECT_EQ(n, 36u);
    EXPECT_FALSE(s.output_pending());
    EXPECT_EQ(link.outputs, 0);
}

TEST_F(h2_stream_io_test, a_failed_stream_fails_a_waiting_read_and_every_write) {
    error_code read_ec, write_ec;
    char buf[4];
    s.async_read_some(asio::buffer(buf), [&](error_code e, std::size_t) { read_ec = e; });
    io.poll();
    s.fail();
    io.restart();
    io.poll();
    EXPECT_EQ(read_ec, asio::error::connection_reset);
    s.async_write_some(asio::buffer("x", 1), [&](error_code e, std::size_t) { write_ec = e; });
    io.restart();
    io.poll();
    EXPECT_EQ(write_ec, asio::error::broken_pipe);
    EXPECT_EQ(link.outputs, 0);   // the link is never called once failed
}

TEST_F(h2_stream_io_test, teardown_ends_the_output_after_what_is_queued) {
    asio::async_write(s, asio::buffer("bye", 3), [](error_code, std::size_t) {});
    io.poll();
    bool torn = false;
    async_teardown(boost::beast::role_type::server, s, [&](error_code ec) {
        EXPECT_FALSE(ec);
        torn = true;
    });
    io.restart();
    io.poll();
    EXPECT_TRUE(torn);
    EXPECT_FALSE(s.output_ended());   // "bye" still waits
    EXPECT_EQ(pull_all(), "bye");
    EXPECT_TRUE(s.output_ended());
    EXPECT_EQ(link.aborts, 0);
    error_code ec;
    s.close(ec);   // after the end: no reset
    EXPECT_EQ(link.aborts, 0);
}

TEST_F(h2_stream_io_test, a_close_before_the_end_resets_the_stream) {
    error_code ec;
    s.close(ec);
    EXPECT_EQ(link.aborts, 1);
    EXPECT_TRUE(s.gone());
}

} // namespace
} // namespace trestle::net
