#include "adapters/proxy/response_parser.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>

#include <gtest/gtest.h>

namespace trestle::proxy {
namespace {

namespace http = boost::beast::http;
using boost::system::error_code;

// Feeds `bytes` whole; returns the error, if any, other than need_more.
error_code feed(response_parser& p, std::string_view bytes) {
    error_code ec;
    std::size_t used = 0;
    while (used < bytes.size()) {
        std::size_t n = p.put(boost::asio::buffer(bytes.data() + used, bytes.size() - used), ec);
        used += n;
        if (ec == http::error::need_more) return {};
        if (ec || n == 0) break;
    }
    return ec;
}

TEST(response_parser, keeps_the_status_fields_and_body) {
    response_parser p(64 * 1024, false);
    p.eager(true);
    ASSERT_FALSE(feed(p, "HTTP/1.1 201 Made\r\nSet-Cookie: a\r\nset-cookie: b\r\nContent-Length: 3\r\n\r\nabc"));
    ASSERT_TRUE(p.is_done());
    EXPECT_EQ(p.status(), 201u);
    EXPECT_EQ(p.reason(), "Made");
    ASSERT_EQ(p.fields().size(), 3u);
    EXPECT_EQ(p.fields()[1].value, "b");
    EXPECT_EQ(p.body_sink(), "abc");
}

TEST(response_parser, unchunks) {
    response_parser p(64 * 1024, false);
    p.eager(true);
    ASSERT_FALSE(feed(p, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n"));
    EXPECT_TRUE(p.is_done());
    EXPECT_TRUE(p.chunked());
    EXPECT_EQ(p.body_sink(), "abcde");
}

// Issue 10 item 17: a chunked response that arrives whole in one read.
TEST(response_parser, trailers_are_dropped_not_added_to_the_header_fields) {
    response_parser p(64 * 1024, false);
    p.eager(true);
    ASSERT_FALSE(feed(p, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "5\r\nhello\r\n0\r\nSet-Cookie: evil=1\r\nLocation: /x\r\nContent-Type: text/evil\r\n\r\n"));
    ASSERT_TRUE(p.is_done());
    ASSERT_EQ(p.fields().size(), 2u);
    EXPECT_EQ(p.fields()[0].value, "text/plain");
    EXPECT_FALSE(p.find("set-cookie"));
    EXPECT_FALSE(p.find("location"));
    EXPECT_EQ(p.trailers_dropped(), 3u);
    EXPECT_EQ(p.body_sink(), "hello");
}

TEST(response_parser, refuses_ambiguous_framing) {
    for (const char* r : {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                          // the whole value is read, not its first token (issue 10 item 9)
                          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked x\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked;foo\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked,\r\n\r\n"}) {
        response_parser p(64 * 1024, false);
        EXPECT_TRUE(feed(p, r)) << r;
    }
}

TEST(response_parser, head_and_bodiless_statuses_have_no_body) {
    response_parser head(64 * 1024, true);
    ASSERT_FALSE(feed(head, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"));
    EXPECT_TRUE(head.is_done());
    EXPECT_EQ(head.content_length().value_or(0), 100u);
    for (const char* r : {"HTTP/1.1 204 No Content\r\n\r\n", "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                          "HTTP/1.1 100 Continue\r\n\r\n"}) {
        response_parser p(64 * 1024, false);
        ASSERT_FALSE(feed(p, r)) << r;
        EXPECT_TRUE(p.is_done()) << r;
    }
}

TEST(response_parser, close_delimited_ends_at_eof) {
    response_parser p(64 * 1024, false);
    p.eager(true);
    ASSERT_FALSE(feed(p, "HTTP/1.0 200 OK\r\n\r\nsome"));
    EXPECT_FALSE(p.is_done());
    EXPECT_TRUE(p.need_eof());
    error_code ec;
    p.put_eof(ec);
    EXPECT_FALSE(ec);
    EXPECT_TRUE(p.is_done());
    EXPECT_EQ(p.body_sink(), "some");
}

TEST(response_parser, a_truncated_body_is_an_error_at_eof) {
    response_parser p(64 * 1024, false);
    p.eager(true);
    ASSERT_FALSE(feed(p, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"));
    error_code ec;
    p.put_eof(ec);
    EXPECT_TRUE(ec);
    response_parser c(64 * 1024, false);
    c.eager(true);
    ASSERT_FALSE(feed(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"));
    c.put_eof(ec);
    EXPECT_TRUE(ec);
}

// A head that arrives in pieces. Beast parses the status line and the
// whole fields of the first piece at once and consumes them, and the rest
// only once the head's end is in; the relay's buffer may move or grow
// between reads, so the fields seen so far are detach()ed before each read.
// Here the consumed bytes are overwritten before the next piece comes.
TEST(response_parser, fields_of_a_head_in_pieces_outlive_the_buffer) {
    const std::string head = "HTTP/1.1 200 Fine Thanks\r\nContent-Type: text/plain\r\nX-Long: " +
                             std::string(100, 'v') + "\r\nSet-Cookie: a=1\r\nContent-Length: 2\r\n\r\nok";
    response_parser p(64 * 1024, false);
    p.eager(true);
    std::string buf;   // what has arrived and is not consumed yet
    std::size_t at = 0, piece = 60;   // the status line, Content-Type and part of X-Long first
    while (!p.is_header_done()) {
        ASSERT_LT(at, head.size());
        buf += head.substr(at, piece);
        at += piece;
        piece = 7;
        error_code ec;
        std::size_t n = p.put(boost::asio::buffer(buf), ec);
        ASSERT_TRUE(!ec || ec == http::error::need_more) << ec.message();
        if (p.is_header_done()) break;
        p.detach();
        std::fill(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n), '#');   // the buffer moves on
        buf.erase(0, n);
    }
    EXPECT_EQ(p.reason(), "Fine Thanks");
    ASSERT_EQ(p.fields().size(), 4u);
    EXPECT_EQ(p.fields()[0].name, "Content-Type");
    EXPECT_EQ(p.fields()[0].value, "text/plain");
    EXPECT_EQ(p.fields()[1].value, std::string(100, 'v'));
    EXPECT_EQ(p.find("set-cookie").value_or(""), "a=1");
    EXPECT_EQ(p.content_length().value_or(0), 2u);
}

TEST(response_parser, head_size_is_limited) {
    response_parser p(100, false);
    std::string big = "HTTP/1.1 200 OK\r\nX: " + std::string(200, 'a') + "\r\n\r\n";
    EXPECT_EQ(feed(p, big), http::error::header_limit);
}

} // namespace
} // namespace trestle::proxy
