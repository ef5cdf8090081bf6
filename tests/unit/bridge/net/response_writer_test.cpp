// The framing every adapter shares (net::response_writer): what the head
// says about the body's length, when there is no body, and the keep-alive
// verdict handed to the exchange. The bytes are taken from the exchange as
// the connection would take them.
#include "bridge/net/response_writer.hpp"

#include "bridge/net/exchange.hpp"
#include "bridge/net/server_context.hpp"
#include "bridge/net/wake_queue.hpp"

#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>

#include <optional>

namespace trestle::net {
namespace {

struct framed {
    std::string head;   // up to and without the blank line
    std::string body;   // what follows it, as sent
    bool keep_alive = false;
};

class response_writer_test : public ::testing::Test {
protected:
    boost::asio::io_context ioc;   // never run: the writer only hands bytes over
    wake_queue wakes{ioc.get_executor()};
    server_context ctx;
    std::optional<exchange> ex;

    request_head request(std::string method = "GET", unsigned version = 11, bool keep_alive = true) {
        request_head h;
        h.method = method;
        h.target = "/";
        h.version = version;
        h.keep_alive = keep_alive;
        h.head_method = method == "HEAD";
        return h;
    }
    exchange& start(request_head h) {
        ex.emplace(wakes, std::move(h), endpoint_info{}, ctx.output_hwm);
        ex->preload_body({});
        return *ex;
    }
    // What the connection would write, and the verdict, once the writer has
    // finished.
    framed taken() {
        io_work w;
        EXPECT_TRUE(ex->take(w));
        EXPECT_TRUE(w.done);
        framed f;
        auto end = w.out.find("\r\n\r\n");
        EXPECT_NE(end, std::string::npos) << w.out;
        f.head = w.out.substr(0, end);
        f.body = w.out.substr(end + 4);
        f.keep_alive = w.keep_alive;
        return f;
    }
    static bool has(const framed& f, std::string_view line) {
        return f.head.find("\r\n" + std::string(line) + "\r\n") != std::string::npos ||
               f.head.ends_with("\r\n" + std::string(line));
    }
    static bool names(const framed& f, std::string_view field) {
        return f.head.find("\r\n" + std::string(field) + ":") != std::string::npos;
    }
};

TEST_F(response_writer_test, a_known_length_goes_out_as_content_length) {
    response_writer w(start(request()), ctx);
    w.set_head(200, "200 OK", "Content-Type: text/plain\r\n", std::nullopt);
    w.emit_head(5);
    w.append_body("hello");
    w.end_body();
    w.finish(false);
    auto f = taken();
    EXPECT_TRUE(f.head.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nServer: trestle\r\nDate: "));
    EXPECT_TRUE(has(f, "Content-Length: 5"));
    EXPECT_FALSE(names(f, "Transfer-Encoding"));
    EXPECT_FALSE(names(f, "Connection"));
    EXPECT_EQ(f.body, "hello");
    EXPECT_TRUE(f.keep_alive);
    EXPECT_EQ(ex->status(), 200u);
    EXPECT_EQ(ex->body_bytes(), 5u);
}

TEST_F(response_writer_test, an_unknown_length_on_http_1_1_is_chunked) {
    response_writer w(start(request()), ctx);
    w.set_head(200, "200 OK", {}, std::nullopt);
    w.emit_head(std::nullopt);
    w.append_body("hello");
    w.append_body(std::string(17, 'x'));
    w.append_body("");   // no empty chunk, which would end the body
    w.end_body();
    w.finish(false);
    auto f = taken();
    EXPECT_TRUE(has(f, "Transfer-Encoding: chunked"));
    EXPECT_FALSE(names(f, "Content-Length"));
    EXPECT_EQ(f.body, "5\r\nhello\r\n11\r\n" + std::string(17, 'x') + "\r\n0\r\n\r\n");
    EXPECT_TRUE(f.keep_alive);
}

TEST_F(response_writer_test, an_unknown_length_on_http_1_0_ends_with_the_connection) {
    response_writer w(start(request("GET", 10, true)), ctx);
    w.set_head(200, "200 OK", {}, std::nullopt);
    w.emit_head(std::nullopt);
    w.append_body("hello");
    w.end_body();
    w.finish(false);
    auto f = taken();
    EXPECT_FALSE(names(f, "Transfer-Encoding"));
    EXPECT_FALSE(names(f, "Content-Length"));
    EXPECT_TRUE(has(f, "Connection: close"));
    EXPECT_EQ(f.body, "hello");
    EXPECT_FALSE(f.keep_alive);
}

TEST_F(response_writer_test, http_1_0_keep_alive_is_said_when_kept) {
    response_writer w(start(request("GET", 10, true)), ctx);
    w.set_head(200, "200 OK", {}, std::nullopt);
    w.emit_head(2);
    w.append_body("ok");
    w.end_body();
    w.finish(false);
    auto f = taken();
    EXPECT_TRUE(has(f, "Connection: keep-alive"));
    EXPECT_TRUE(f.keep_alive);
}

TEST_F(response_writer_test, a_client_that_asked_to_close_is_told_connection_close) {
    response_writer w(start(request("GET", 11, false)), ctx);
    w.set_head(200, "200 OK", {}, std::nullopt);
    w.emit_head(2);
    w.append_body("ok");
    w.end_body();
    w.finish(false);
    auto f = taken();
    EXPECT_TRUE(has(f, "Connection: close"));
    EXPECT_FALSE(f.keep_alive);
}

TEST_F(response_writer_test, a_draining_server_closes_after_the_response) {
    ctx.draining = true;
    response_writer w(start(request()), ctx);
    w.set_head(200, "200 OK", {}, std::nullopt);
    w.emit_head(2);
    w.append_body("ok");
    w.end_body();
    w.finish(false);
    auto f = taken();
    EXPECT_TRUE(has(f, "Connection: close"));
    EXPECT_FALSE(f.keep_alive);
}

TEST_F(response_writer_test, close_after_closes_after_the_response) {
    response_writer w(start(request()), ctx);
    w.set_head(200, "200 OK", {}, std::nullopt);
    w.close_after();
    w.emit_head(2);
    w.append_body("ok");
    w.end_body();
    w.finish(false);
    auto f = taken();
    EXPECT_TRUE(has(f, "Connection: close"));
    EXPECT_FALSE(f.keep_alive);
}

TEST_F(response_writer_test, head_keeps_the_get_length_and_sends_no_body) {
    response_writer w(start(request("HEAD")), ctx);
    w.set_head(200, "200 OK", {}, std::nullopt);
    w.emit_head(5);
    w.append_body("hello");
    w.end_body();
    w.finish(false);
    auto f = taken();
    EXPECT_TRUE(has(f, "Content-Length: 5"));
    EXPECT_EQ(f.body, "");
    EXPECT_TRUE(f.keep_alive);
}

TEST_F(response_writer_test, head_with_an_empty_or_streamed_body_says_no_length_and_needs_no_framing) {
    for (std::optional<std::uint64_t> known : {std::optional<std::uint64_t>(0), std::optional<std::uint64_t>()}) {
        response_writer w(start(request("HEAD")), ctx);
        w.set_head(200, "200 OK", {}, std::nullopt);
        w.emit_head(known);
        w.end_body();
        w.finish(false);
        auto f = taken();
        EXPECT_FALSE(names(f, "Content-Length"));
        EXPECT_FALSE(names(f, "Transfer-Encoding"));
        EXPECT_EQ(f.body, "");
        EXPECT_TRUE(f.keep_alive);   // no body follows, so no close is needed to end one
    }
}

TEST_F(response_writer_test, no_body_and_no_length_for_204_and_304) {
    for (unsigned status : {204u, 304u}) {
        response_writer w(start(request()), ctx);
        w.set_head(status, std::to_string(status) + " X", {}, std::nullopt);
        w.emit_head(std::nullopt);
        w.append_body("dropped");
        w.end_body();
        w.finish(false);
        auto f = taken();
        EXPECT_FALSE(names(f, "Content-Length")) << status;
        EXPECT_FALSE(names(f, "Transfer-Encoding")) << status;
        EXPECT_EQ(f.body, "") << status;
        EXPECT_TRUE(f.keep_alive) << status;
    }
}

TEST_F(response_writer_test, a_204_drops_a_declared_length_and_a_304_keeps_it) {
    for (unsigned status : {204u, 304u}) {
        response_writer w(start(request()), ctx);
        w.set_head(status, std::to_string(status) + " X", {}, 10);
        w.emit_head(std::nullopt);
        w.end_body();
        w.finish(false);
        auto f = taken();
        EXPECT_EQ(names(f, "Content-Length"), status == 304) << status;
        EXPECT_EQ(f.body, "") << status;
        EXPECT_TRUE(f.keep_alive) << status;   // the declared length is not a promise of a body here
    }
}

TEST_F(response_writer_test, a_declared_length_is_sent_as_is_and_met) {
    response_writer w(start(request()), ctx);
    w.set_head(200, "200 OK", {}, 10);
    w.emit_head(std::nullopt);
    w.append_body("01234");
    w.append_body("56789");
    w.end_body();
    w.finish(false);
    auto f = taken();
    EXPECT_TRUE(has(f, "Content-Length: 10"));
    EXPECT_FALSE(names(f, "Transfer-Encoding"));
    EXPECT_EQ(f.body, "0123456789");
    EXPECT_TRUE(f.keep_alive);
}

TEST_F(response_writer_test, a_body_longer_than_declared_is_cut_and_the_connection_closes) {
    response_writer w(start(request()), ctx);
    w.set_head(200, "200 OK", {}, 4);
    w.emit_head(std::nullopt);
    w.append_body("0123456789");
    w.end_body();
    w.finish(false);
    auto f = taken();
    EXPECT_EQ(f.body, "0123");
    EXPECT_FALSE(f.keep_alive);
}

TEST_F(response_writer_test, a_body_shorter_than_declared_closes_the_connection) {
    response_writer w(start(request()), ctx);
    w.set_head(200, "200 OK", {}, 10);
    w.emit_head(std::nullopt);
    w.append_body("0123");
    w.end_body();
    w.finish(false);
    auto f = taken();
    EXPECT_EQ(f.body, "0123");
    EXPECT_FALSE(f.keep_alive);
}

TEST_F(response_writer_test, an_error_response_replaces_what_was_not_sent) {
    response_writer w(start(request()), ctx);
    w.set_head(200, "200 OK", "X-App: 1\r\n", std::nullopt);
    w.error_response(500);
    w.finish(false);
    auto f = taken();
    EXPECT_TRUE(f.head.starts_with("HTTP/1.1 500 Internal Server Error\r\n"));
    EXPECT_FALSE(names(f, "X-App"));
    EXPECT_EQ(f.body, "500 Internal Server Error\n");
    EXPECT_TRUE(f.keep_alive);
    EXPECT_EQ(ex->status(), 500u);
}

TEST_F(response_writer_test, an_error_about_the_request_body_closes) {
    for (unsigned status : {400u, 408u, 413u}) {
        response_writer w(start(request()), ctx);
        w.error_response(status);
        w.finish(false);
        auto f = taken();
        EXPECT_TRUE(has(f, "Connection: close")) << status;
        EXPECT_FALSE(f.keep_alive) << status;
    }
}

TEST_F(response_writer_test, nothing_goes_out_to_a_client_that_left) {
    response_writer w(start(request()), ctx);
    w.set_head(200, "200 OK", {}, std::nullopt);
    w.emit_head(2);
    w.append_body("ok");
    w.finish(true);
    io_work got;
    ASSERT_TRUE(ex->take(got));
    EXPECT_EQ(got.out, "");
    EXPECT_TRUE(got.done);
    EXPECT_FALSE(got.keep_alive);
}

TEST_F(response_writer_test, a_writer_dropped_unfinished_still_finishes_the_exchange) {
    {
        response_writer w(start(request()), ctx);
        w.set_head(200, "200 OK", {}, std::nullopt);
        w.emit_head(std::nullopt);
        w.append_body("partial");
    }
    io_work got;
    ASSERT_TRUE(ex->take(got));
    EXPECT_TRUE(got.done);
    EXPECT_FALSE(got.keep_alive);
    EXPECT_EQ(got.out, "");
}

} // namespace
} // namespace trestle::net
