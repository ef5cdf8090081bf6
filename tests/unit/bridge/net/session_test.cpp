// The HTTP/1.1 connection (net::session) driven through bytes only: a real
// session on a socketpair, the real router and response writer, and fake
// apps (tests/unit/support/connection_tester.hpp). Each test asserts what a
// client sees: the response bytes, their order, and when the stream ends.
#include "tests/unit/support/connection_tester.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>

namespace trestle::test_support {
namespace {

// A request answered, with the body the fake apps give it (its target).
void expect_served(test_client& c, std::string_view target) {
    auto r = c.read_response();
    ASSERT_TRUE(r) << "no response to " << target;
    EXPECT_EQ(r->status, 200u);
    EXPECT_EQ(r->body, target);
}

// A second request on the same connection is served: it was kept alive.
void expect_kept_alive(test_client& c) {
    ASSERT_TRUE(c.send(get("/again")));
    expect_served(c, "/again");
}

// ---- pipelining ---------------------------------------------------------------

TEST(session_pipelining, three_requests_in_one_write_are_answered_in_order) {
    connection_tester t;
    auto c = t.open();
    ASSERT_TRUE(c.send(get("/a") + get("/thread/b") + get("/c")));
    expect_served(c, "/a");
    expect_served(c, "/thread/b");
    expect_served(c, "/c");
    EXPECT_TRUE(c.quiet_for(50ms));   // nothing more, and still open
    expect_kept_alive(c);
}

TEST(session_pipelining, the_first_request_is_answered_first_even_when_its_app_is_slowest) {
    connection_tester t;
    auto c = t.open();
    ASSERT_TRUE(c.send(get("/held/1") + get("/2") + get("/thread/3")));
    ASSERT_TRUE(t.held.wait_requests(1));
    // The requests behind it wait, unread by any app, and nothing is sent.
    EXPECT_TRUE(c.quiet_for(100ms));
    EXPECT_EQ(t.now.requests(), 0u);
    EXPECT_EQ(t.threaded.requests(), 0u);
    t.held.answer(0);
    expect_served(c, "/held/1");
    expect_served(c, "/2");
    expect_served(c, "/thread/3");
    EXPECT_EQ(t.now.requests(), 1u);
    EXPECT_EQ(t.threaded.requests(), 1u);
    expect_kept_alive(c);
}

TEST(session_pipelining, a_watching_app_with_a_request_queued_behind_it_is_answered_first) {
    // The next request is already in the buffer, so the connection waits
    // for the app on its wakeup timer, not on a read of the socket.
    connection_tester t;
    auto c = t.open();
    ASSERT_TRUE(c.send(get("/watch/1") + get("/2")));
    ASSERT_TRUE(t.watch.wait_requests(1));
    EXPECT_TRUE(c.quiet_for(50ms));
    t.watch.answer(0);
    expect_served(c, "/watch/1");
    expect_served(c, "/2");
    EXPECT_FALSE(t.watch.request(0)->client_gone());
}

// ---- keep-alive decisions --------------------------------------------------------

TEST(session_keep_alive, http_1_1_stays_open_by_default) {
    connection_tester t;
    auto c = t.open();
    ASSERT_TRUE(c.send(get("/")));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->field("connection"), "");
    EXPECT_TRUE(c.quiet_for(50ms));
    expect_kept_alive(c);
    EXPECT_EQ(t.live(), 1u);
}

TEST(session_keep_alive, http_1_0_without_keep_alive_closes) {
    connection_tester t;
    auto c = t.open();
    ASSERT_TRUE(c.send(get("/old", {}, "HTTP/1.0")));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "/old");
    EXPECT_EQ(r->field("connection"), "close");
    EXPECT_TRUE(c.closed_by_server());
    EXPECT_TRUE(t.wait_sessions_done());
}

TEST(session_keep_alive, http_1_0_with_keep_alive_stays_open) {
    connection_tester t;
    auto c = t.open();
    ASSERT_TRUE(c.send(get("/old", "Connection: keep-alive\r\n", "HTTP/1.0")));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->field("connection"), "keep-alive");
    expect_kept_alive(c);
}

TEST(session_keep_alive, a_streamed_http_1_0_response_ends_with_the_connection) {
    // No Content-Length is known and HTTP/1.0 has no chunked coding: the end
    // of the stream is the end of the body, whatever the client asked for.
    connection_tester t;
    t.threaded.standard.body = std::string(10'000, 'x');
    t.threaded.standard.pieces = 4;
    auto c = t.open();
    ASSERT_TRUE(c.send(get("/thread/s", "Connection: keep-alive\r\n", "HTTP/1.0")));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_FALSE(r->has("Content-Length"));
    EXPECT_FALSE(r->has("Transfer-Encoding"));
    EXPECT_EQ(r->field("connection"), "close");
    EXPECT_EQ(r->body, std::string(10'000, 'x'));
    EXPECT_TRUE(t.wait_sessions_done());
}

TEST(session_keep_alive, connection_close_from_the_client_closes) {
    connection_tester t;
    auto c = t.open();
    ASSERT_TRUE(c.send(get("/bye", "Connection: close\r\n")));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->field("connection"), "close");
    EXPECT_TRUE(c.closed_by_server());
}

TEST(session_keep_alive, an_app_that_finishes_without_keep_alive_closes) {
    connection_tester t;
    auto c = t.open();
    ASSERT_TRUE(c.send(get("/held/x")));
    ASSERT_TRUE(t.held.wait_requests(1));
    t.held.answer(0, {.close = true});
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "/held/x");
    EXPECT_EQ(r->field("connection"), "close");
    EXPECT_TRUE(c.closed_by_server());
}

TEST(session_keep_alive, a_pipelined_request_after_a_closing_response_is_not_answered) {
    connection_tester t;
    t.now.standard.close = true;
    auto c = t.open();
    ASSERT_TRUE(c.send(get("/1") + get("/2")));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "/1");
    EXPECT_EQ(r->field("connection"), "close");
    EXPECT_TRUE(c.closed_by_server());
    EXPECT_EQ(t.now.requests(), 1u);
}

TEST(session_keep_alive, a_head_response_has_no_body_and_the_next_one_follows_it) {
    connection_tester t;
    auto c = t.open();
    ASSERT_TRUE(c.send("HEAD /h HTTP/1.1\r\nHost: tester\r\n\r\n" + get("/after")));
    auto r = c.read_response(/*bodiless=*/true);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200u);
    EXPECT_EQ(r->field("content-length"), "2");   // the GET's length
    expect_served(c, "/after");
}

// ---- limits ----------------------------------------------------------------------

TEST(session_limits, a_head_over_max_header_bytes_is_431_and_closes) {
    connection_tester t;
    t.ctx.limits.max_header_bytes = 1024;
    auto c = t.open();
    ASSERT_TRUE(c.send(get("/", "X-Big: " + std::string(2000, 'b') + "\r\n")));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 431u);
    EXPECT_EQ(r->field("connection"), "close");
    EXPECT_TRUE(c.closed_by_server());
    EXPECT_EQ(t.now.requests(), 0u);
}

TEST(session_limits, more_fields_than_max_header_count_is_431_and_closes) {
    connection_tester t;
    t.ctx.limits.max_header_count = 5;
    std::string fields;
    for (int i = 0; i < 10; ++i) fields += "X-F" + std::to_string(i) + ": v\r\n";
    auto c = t.open();
    ASSERT_TRUE(c.send(get("/", fields)));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 431u);
    EXPECT_TRUE(c.closed_by_server());
    EXPECT_EQ(t.now.requests(), 0u);
}

TEST(session_limits, a_head_at_max_header_count_is_served) {
    connection_tester t;
    t.ctx.limits.max_header_count = 5;
    auto c = t.open();
    ASSERT_TRUE(c.send(get("/ok", "A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n")));   // and Host: 5
    expect_served(c, "/ok");
}

TEST(session_limits, a_body_over_max_body_bytes_is_413_before_any_app_sees_it) {
    connection_tester t;
    t.ctx.limits.max_body_bytes = 100;
    auto c = t.open();
    ASSERT_TRUE(c.send("POST /thread/up HTTP/1.1\r\nHost: tester\r\nContent-Length: 1000\r\n\r\n" +
                       std::string(300, 'u')));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 413u);
    EXPECT_EQ(r->field("connection"), "close");
    // The server stops sending (and drops what still comes): end of stream.
    EXPECT_TRUE(c.closed_by_server());
    EXPECT_EQ(t.threaded.requests(), 0u);
}

TEST(session_limits, a_body_within_max_body_bytes_is_served) {
    connection_tester t;
    t.ctx.limits.max_body_bytes = 100;
    auto c = t.open();
    ASSERT_TRUE(c.send("POST /thread/up HTTP/1.1\r\nHost: tester\r\nContent-Length: 100\r\n\r\n" +
                       std::string(100, 'u')));
    expect_served(c, "/thread/up");
    expect_kept_alive(c);
}

TEST(session_limits, a_body_the_app_did_not_read_is_drained_and_the_connection_goes_on) {
    // Over the 64 KiB read before dispatch, so it is still on the socket
    // when the app answers without reading it.
    connection_tester t;
    auto c = t.open();
    ASSERT_TRUE(c.send("POST /thread/up HTTP/1.1\r\nHost: tester\r\nContent-Length: 100000\r\n\r\n" +
                       std::string(100'000, 'u') + get("/next")));
    expect_served(c, "/thread/up");
    expect_served(c, "/next");
}

TEST(session_limits, a_body_the_app_did_not_read_closes_the_connection_past_one_mib) {
    connection_tester t;
    auto c = t.open();
    // The client can still send all of it (the server reads and drops it
    // before closing), and then reads the answer.
    EXPECT_TRUE(c.send("POST /thread/up HTTP/1.1\r\nHost: tester\r\nContent-Length: 3000000\r\n\r\n" +
                       std::string(3'000'000, 'u')));
    expect_served(c, "/thread/up");
    EXPECT_TRUE(c.closed_by_server());
    EXPECT_TRUE(t.wait_sessions_done());
}

// A chunked request of `size` bytes in chunks of 10,000.
std::string chunked_post(std::string_view target, std::size_t size, std::string_view extra = {}) {
    std::string r = "POST " + std::string(target) + " HTTP/1.1\r\nHost: tester\r\nTransfer-Encoding: chunked\r\n";
    r += extra;
    r += "\r\n";
    for (std::size_t at = 0; at < size; at += 10'000) {
        std::size_t n = std::min<std::size_t>(10'000, size - at);
        char hex[16];
        std::snprintf(hex, sizeof hex, "%zx", n);
        r += hex;
        r += "\r\n" + std::string(n, static_cast<char>('a' + at / 10'000 % 26)) + "\r\n";
    }
    return r + "0\r\n\r\n";
}

TEST(session_limits, a_streamed_body_reaches_the_app_as_it_reads_it) {
    // Chunked, so not read before dispatch: the app's reads pull it through.
    connection_tester t;
    t.threaded.standard.read_body = true;
    auto c = t.open();
    ASSERT_TRUE(c.send(chunked_post("/thread/echo", 200'000) + get("/next")));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200u);
    ASSERT_EQ(r->body.size(), 200'000u);
    EXPECT_EQ(r->body.substr(0, 3), "aaa");
    EXPECT_EQ(r->body.substr(199'997), "ttt");
    expect_served(c, "/next");
}

TEST(session_limits, a_streamed_body_over_max_body_bytes_is_413_and_the_client_can_finish_sending) {
    connection_tester t;
    t.ctx.limits.max_body_bytes = 100'000;
    t.threaded.standard.read_body = true;
    auto c = t.open();
    EXPECT_TRUE(c.send(chunked_post("/thread/echo", 1'000'000)));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 413u);
    EXPECT_EQ(r->field("connection"), "close");
    EXPECT_TRUE(c.closed_by_server());
}

TEST(session_limits, expect_100_continue_is_answered_when_the_app_first_reads) {
    connection_tester t;
    t.threaded.standard.read_body = true;
    auto c = t.open();
    ASSERT_TRUE(c.send("POST /thread/echo HTTP/1.1\r\nHost: tester\r\nContent-Length: 5\r\n"
                       "Expect: 100-continue\r\n\r\n"));
    auto go_on = c.read_response();
    ASSERT_TRUE(go_on);
    EXPECT_EQ(go_on->status, 100u);
    ASSERT_TRUE(c.send("hello"));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "hello");
    expect_kept_alive(c);
}

// ---- timeouts (the registry's watchdog ticks every 250 ms) ----------------------------

TEST(session_timeouts, a_head_not_finished_in_header_timeout_is_408_and_closes) {
    connection_tester t;
    t.ctx.limits.header_timeout = 300ms;
    auto start = steady::now();
    auto c = t.open();
    ASSERT_TRUE(c.send("GET /slow HTTP/1.1\r\nHost: tes"));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_GE(steady::now() - start, 300ms);
    EXPECT_EQ(r->status, 408u);
    EXPECT_EQ(r->field("connection"), "close");
    EXPECT_TRUE(c.closed_by_server());
    EXPECT_EQ(t.now.requests(), 0u);
}

TEST(session_timeouts, an_idle_keep_alive_connection_is_closed_without_a_word) {
    connection_tester t;
    t.ctx.limits.keepalive_timeout = 300ms;
    auto c = t.open();
    auto start = steady::now();
    ASSERT_TRUE(c.send(get("/")));
    expect_served(c, "/");
    EXPECT_TRUE(c.closed_by_server());   // no 408: nothing was asked
    EXPECT_GE(steady::now() - start, 300ms);
    EXPECT_TRUE(t.wait_sessions_done());
}

TEST(session_timeouts, a_body_that_stops_arriving_is_408_after_io_timeout) {
    connection_tester t;
    t.ctx.limits.io_timeout = 300ms;
    auto c = t.open();
    auto start = steady::now();
    ASSERT_TRUE(c.send("POST /thread/up HTTP/1.1\r\nHost: tester\r\nContent-Length: 100\r\n\r\n0123456789"));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_GE(steady::now() - start, 300ms);
    EXPECT_EQ(r->status, 408u);
    EXPECT_EQ(r->field("connection"), "close");
    EXPECT_TRUE(c.closed_by_server());
    EXPECT_EQ(t.threaded.requests(), 0u);
}

TEST(session_timeouts, a_client_that_stops_reading_is_cut_after_io_timeout) {
    // The watching app's answer is first written inline, then by the
    // connection's coroutine once the socket is full; neither waits forever.
    for (std::string app : {"/held/big", "/watch/big"}) {
        SCOPED_TRACE(app);
        connection_tester t;
        t.ctx.limits.io_timeout = 300ms;
        auto c = t.open();
        ASSERT_TRUE(c.send(get(app)));
        auto& target = app == "/held/big" ? t.held : t.watch;
        ASSERT_TRUE(target.wait_requests(1));
        target.answer(0, {.body = std::string(8 << 20, 'z')});
        EXPECT_TRUE(t.wait_sessions_done());
        EXPECT_TRUE(target.request(0)->client_gone());
    }
}

TEST(session_timeouts, the_keep_alive_timeout_does_not_cut_a_slow_app) {
    // While the app works the connection has no deadline of its own (only
    // --timeout, which is off here).
    connection_tester t;
    t.ctx.limits.keepalive_timeout = 300ms;
    t.ctx.limits.header_timeout = 300ms;
    auto c = t.open();
    ASSERT_TRUE(c.send(get("/held/slow")));
    ASSERT_TRUE(t.held.wait_requests(1));
    EXPECT_TRUE(c.quiet_for(700ms));
    t.held.answer(0);
    expect_served(c, "/held/slow");
}

// ---- the client leaves ----------------------------------------------------------

TEST(session_abort, a_watching_app_learns_that_the_client_closed) {
    connection_tester t;
    auto c = t.open();
    ASSERT_TRUE(c.send(get("/watch/long-poll")));
    ASSERT_TRUE(t.watch.wait_requests(1));
    c.close();
    EXPECT_TRUE(t.watch.wait_client_gone(0));
    EXPECT_TRUE(t.wait_sessions_done());
    // Its late answer goes nowhere.
    t.watch.answer(0);
    ASSERT_TRUE(t.watch.wait_answers(1));
    EXPECT_EQ(t.watch.answers_to_gone_clients(), 1u);
}

TEST(session_abort, a_watching_app_learns_of_a_half_close_too) {
    connection_tester t;
    auto c = t.open();
    ASSERT_TRUE(c.send(get("/watch/x")));
    ASSERT_TRUE(t.watch.wait_requests(1));
    c.shutdown_write();
    EXPECT_TRUE(t.watch.wait_client_gone(0));
    EXPECT_TRUE(c.closed_by_server());
}

TEST(session_abort, a_non_watching_app_still_answers_a_half_closed_client) {
    // A WSGI-like app is not watched: a client that half-closes after its
    // request still gets the answer.
    connection_tester t;
    auto c = t.open();
    ASSERT_TRUE(c.send(get("/held/x")));
    ASSERT_TRUE(t.held.wait_requests(1));
    c.shutdown_write();
    EXPECT_TRUE(c.quiet_for(50ms));
    EXPECT_FALSE(t.held.request(0)->client_gone());
    t.held.answer(0);
    expect_served(c, "/held/x");
}

TEST(session_abort, the_answer_of_a_non_watching_app_to_a_client_that_left_is_dropped) {
    connection_tester t;
    auto c = t.open();
    ASSERT_TRUE(c.send(get("/held/x")));
    ASSERT_TRUE(t.held.wait_requests(1));
    c.close();
    // Nobody reads the socket meanwhile, so nobody notices yet.
    EXPECT_EQ(t.live(), 1u);
    t.held.answer(0);
    ASSERT_TRUE(t.held.wait_answers(1));
    EXPECT_TRUE(t.wait_sessions_done());   // the write failed; the connection ended
    EXPECT_TRUE(t.held.request(0)->client_gone());
}

TEST(session_abort, a_client_that_leaves_during_a_large_streamed_answer_ends_the_app_s_writes) {
    for (std::string app : {"/held/big", "/watch/big"}) {
        SCOPED_TRACE(app);
        connection_tester t;
        t.ctx.output_hwm = 64 * 1024;
        auto c = t.open();
        ASSERT_TRUE(c.send(get(app)));
        auto& target = app == "/held/big" ? t.held : t.watch;
        ASSERT_TRUE(target.wait_requests(1));
        target.answer(0, {.body = std::string(8 << 20, 'z'), .pieces = 128});
        // The first bytes arrive; the rest cannot, past the socket's buffers
        // and the high-water mark, until the client reads. It leaves instead.
        EXPECT_FALSE(c.quiet_for(patience));
        c.close();
        // The app was blocked above the high-water mark; it is released.
        ASSERT_TRUE(target.wait_answers(1));
        EXPECT_EQ(target.answers_to_gone_clients(), 1u);
        EXPECT_TRUE(t.wait_sessions_done());
    }
}

// ---- refusal ------------------------------------------------------------------------

TEST(session_refusal, a_full_handler_gets_503_with_retry_after_and_the_connection_closes) {
    connection_tester t;
    t.ctx.retry_after = "7";
    auto c = t.open();
    ASSERT_TRUE(c.send(get("/busy/x") + get("/after")));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 503u);
    EXPECT_EQ(r->field("retry-after"), "7");
    EXPECT_EQ(r->field("connection"), "close");
    EXPECT_TRUE(c.closed_by_server());
    EXPECT_EQ(t.busy.refused(), 1u);
    EXPECT_EQ(t.now.requests(), 0u);
}

TEST(session_refusal, a_refused_request_whose_body_is_still_coming_gets_its_503_not_a_broken_pipe) {
    // As for a 413: the client still sending its body must be able to finish
    // sending and then read the answer, rather than fail on a closed socket.
    connection_tester t;
    auto c = t.open();
    EXPECT_TRUE(c.send("POST /busy/up HTTP/1.1\r\nHost: tester\r\nContent-Length: 1000000\r\n\r\n" +
                       std::string(1'000'000, 'u')));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 503u);
    EXPECT_TRUE(c.closed_by_server());
}

// ---- the inline completion path (session::exchange_ready) ------------------------------
// A watching app's request has its body in, so the connection waits on a
// read of its socket. What the app hands over from its own thread is then
// written from the io thread's wakeup, without resuming the connection's
// coroutine; whatever does not fit is left to the coroutine.

TEST(session_inline, an_answer_from_another_thread_is_written_while_the_connection_reads) {
    connection_tester t;
    auto c = t.open();
    ASSERT_TRUE(c.send(get("/watch/1")));
    ASSERT_TRUE(t.watch.wait_requests(1));
    t.watch.answer(0);
    expect_served(c, "/watch/1");
    // The connection is idle now, its coroutine still in that read: the next
    // request wakes it, and is served.
    ASSERT_TRUE(c.send(get("/watch/2")));
    ASSERT_TRUE(t.watch.wait_requests(2));
    t.watch.answer(1);
    expect_served(c, "/watch/2");
    expect_kept_alive(c);
    EXPECT_FALSE(t.watch.request(0)->client_gone());
}

TEST(session_inline, a_response_written_inline_starts_the_keep_alive_timeout) {
    connection_tester t;
    t.ctx.limits.keepalive_timeout = 300ms;
    auto c = t.open();
    ASSERT_TRUE(c.send(get("/watch/1")));
    ASSERT_TRUE(t.watch.wait_requests(1));
    auto answered = steady::now();
    t.watch.answer(0);
    expect_served(c, "/watch/1");
    EXPECT_TRUE(c.closed_by_server());
    EXPECT_GE(steady::now() - answered, 300ms);
    EXPECT_TRUE(t.wait_sessions_done());
}

TEST(session_inline, a_response_without_keep_alive_closes_the_connection) {
    connection_tester t;
    auto c = t.open();
    ASSERT_TRUE(c.send(get("/watch/1")));
    ASSERT_TRUE(t.watch.wait_requests(1));
    t.watch.answer(0, {.close = true});
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "/watch/1");
    EXPECT_EQ(r->field("connection"), "close");
    EXPECT_TRUE(c.closed_by_server());
    EXPECT_TRUE(t.wait_sessions_done());
}

TEST(session_inline, a_response_larger_than_the_socket_takes_is_finished_by_the_connection) {
    connection_tester t;
    std::string big(4 << 20, '\0');
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 23);
    auto c = t.open();
    ASSERT_TRUE(c.send(get("/watch/big")));
    ASSERT_TRUE(t.watch.wait_requests(1));
    t.watch.answer(0, {.body = big});   // one buffer: the head and 4 MiB
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->field("content-length"), std::to_string(big.size()));
    EXPECT_TRUE(r->body == big);
    expect_kept_alive(c);
}

TEST(session_inline, a_large_streamed_response_crosses_the_high_water_mark_and_the_socket) {
    connection_tester t;
    t.ctx.output_hwm = 64 * 1024;
    std::string big(4 << 20, '\0');
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('A' + i % 19);
    auto c = t.open();
    ASSERT_TRUE(c.send(get("/watch/stream")));
    ASSERT_TRUE(t.watch.wait_requests(1));
    t.watch.answer(0, {.body = big, .pieces = 64});   // 64 KiB writes, chunked
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->field("transfer-encoding"), "chunked");
    EXPECT_TRUE(r->body == big);
    expect_kept_alive(c);
    EXPECT_FALSE(t.watch.request(0)->client_gone());
}

TEST(session_inline, a_large_response_without_keep_alive_is_sent_whole_then_closes) {
    connection_tester t;
    std::string big(4 << 20, 'q');
    auto c = t.open();
    ASSERT_TRUE(c.send(get("/watch/big")));
    ASSERT_TRUE(t.watch.wait_requests(1));
    t.watch.answer(0, {.body = big, .close = true});
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->field("connection"), "close");
    EXPECT_EQ(r->body.size(), big.size());
    EXPECT_TRUE(c.closed_by_server());
}

TEST(session_inline, a_request_sent_while_the_app_runs_waits_for_its_answer) {
    // The read the connection waits on takes the next request; the answer
    // then reaches the connection on its wakeup timer.
    connection_tester t;
    auto c = t.open();
    ASSERT_TRUE(c.send(get("/watch/1")));
    ASSERT_TRUE(t.watch.wait_requests(1));
    ASSERT_TRUE(c.send(get("/2")));
    EXPECT_TRUE(c.quiet_for(100ms));
    EXPECT_EQ(t.now.requests(), 0u);
    t.watch.answer(0);
    expect_served(c, "/watch/1");
    expect_served(c, "/2");
    EXPECT_FALSE(t.watch.request(0)->client_gone());
}

TEST(session_inline, a_client_that_closes_after_an_inline_response_ends_the_connection) {
    connection_tester t;
    auto c = t.open();
    ASSERT_TRUE(c.send(get("/watch/1")));
    ASSERT_TRUE(t.watch.wait_requests(1));
    t.watch.answer(0);
    expect_served(c, "/watch/1");
    c.close();
    EXPECT_TRUE(t.wait_sessions_done());
}

TEST(session_inline, many_requests_one_after_another_on_one_connection) {
    connection_tester t;
    auto c = t.open();
    for (std::size_t i = 0; i < 50; ++i) {
        std::string target = "/watch/" + std::to_string(i);
        ASSERT_TRUE(c.send(get(target)));
        ASSERT_TRUE(t.watch.wait_requests(i + 1));
        t.watch.answer(i, {.pieces = i % 3});   // one buffer, or streamed
        expect_served(c, target);
    }
    EXPECT_EQ(t.live(), 1u);
}

// ---- the router, through the connection -----------------------------------------------

TEST(session_router, each_prefix_reaches_its_app_and_the_rest_the_root) {
    connection_tester t;
    auto c = t.open();
    ASSERT_TRUE(c.send(get("/thread/a") + get("/threaded") + get("/%74hread/b")));
    expect_served(c, "/thread/a");
    expect_served(c, "/threaded");      // not under /thread: the root
    expect_served(c, "/%74hread/b");    // the decoded path is matched
    EXPECT_EQ(t.threaded.requests(), 2u);
    EXPECT_EQ(t.now.requests(), 1u);
}

TEST(session_router, a_path_no_mount_may_see_is_400_and_the_connection_goes_on) {
    connection_tester t;
    auto c = t.open();
    ASSERT_TRUE(c.send(get("/thread/../etc") + get("/next")));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400u);
    expect_served(c, "/next");
    EXPECT_EQ(t.threaded.requests(), 0u);
}

} // namespace
} // namespace trestle::test_support
