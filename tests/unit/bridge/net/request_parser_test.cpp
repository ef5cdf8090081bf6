#include "bridge/net/request_parser.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <gtest/gtest.h>

namespace trestle::net {
namespace {

namespace http = boost::beast::http;

struct parsed {
    boost::system::error_code ec;
    std::size_t consumed = 0;
    request_head head;
    std::string body;
    bool done = false;
};

// Feeds the whole input the way a session does: head first, then the body.
parsed parse(std::string_view in, std::size_t max_bytes = 8192, std::size_t max_count = 100,
             std::uint64_t max_body = 1 << 20) {
    parsed r;
    request_parser p(max_bytes, max_count, max_body);
    p.eager(false);
    std::string bytes(in);   // put_head may fix the version in place
    in = bytes;
    r.consumed = p.put_head(boost::asio::buffer(bytes.data(), bytes.size()), r.ec);
    if (!r.ec && p.is_header_done()) r.ec = check_raw_head(in.substr(0, r.consumed));
    while (!r.ec && p.is_header_done() && !p.is_done() && r.consumed < in.size()) {
        auto rest = in.substr(r.consumed);
        std::size_t n = p.put(boost::asio::buffer(rest.data(), rest.size()), r.ec);
        r.consumed += n;
        if (n == 0) break;
    }
    r.head = p.head();
    r.body = p.body_sink();
    r.done = p.is_done();
    return r;
}

TEST(request_parser, keeps_fields_in_order_with_case) {
    auto r = parse("GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-One: 1\r\nx-one: 2\r\n\r\n");
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.head.method, "GET");
    EXPECT_EQ(r.head.target, "/a?b=1");
    EXPECT_EQ(r.head.version, 11u);
    ASSERT_EQ(r.head.headers.size(), 3u);
    EXPECT_EQ(r.head.headers[1].name, "X-One");
    EXPECT_EQ(r.head.headers[2].name, "x-one");
    EXPECT_EQ(r.head.headers[2].value, "2");
    EXPECT_EQ(r.head.path(), "/a");
    EXPECT_EQ(r.head.query(), "b=1");
    EXPECT_TRUE(r.head.keep_alive);
}

TEST(request_parser, decodes_chunked_body) {
    auto r = parse("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n");
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_TRUE(r.head.chunked);
    EXPECT_TRUE(r.done);
    EXPECT_EQ(r.body, "hello world");
}

TEST(request_parser, accepts_absolute_and_asterisk_forms) {
    auto a = parse("GET http://example.com/p?q HTTP/1.1\r\nHost: example.com\r\n\r\n");
    ASSERT_FALSE(a.ec) << a.ec.message();
    EXPECT_EQ(a.head.path(), "/p");
    auto o = parse("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_FALSE(o.ec) << o.ec.message();
    auto c = parse("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    EXPECT_FALSE(c.ec) << c.ec.message();
}

TEST(request_parser, http10_defaults_to_close) {
    auto r = parse("GET / HTTP/1.0\r\n\r\n");
    ASSERT_FALSE(r.ec);
    EXPECT_FALSE(r.head.keep_alive);
    auto k = parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    EXPECT_TRUE(k.head.keep_alive);
}

TEST(request_parser, expect_continue_is_noted) {
    auto r = parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
    ASSERT_FALSE(r.ec);
    EXPECT_TRUE(r.head.expect_continue);
    EXPECT_EQ(r.head.content_length.value_or(0), 3u);
}

struct rejected_case {
    const char* name;
    const char* input;
    unsigned status;
    friend void PrintTo(const rejected_case& c, std::ostream* os) { *os << c.name; }
};

class request_parser_rejects : public testing::TestWithParam<rejected_case> {};

TEST_P(request_parser_rejects, with_status) {
    auto c = GetParam();
    auto r = parse(c.input, 200, 5, 100);
    ASSERT_TRUE(r.ec) << c.name;
    EXPECT_NE(r.ec, http::error::need_more) << c.name;
    EXPECT_EQ(status_for_parse_error(r.ec), c.status) << c.name << ": " << r.ec.message();
}

INSTANTIATE_TEST_SUITE_P(
    limits_and_framing, request_parser_rejects,
    testing::Values(
        rejected_case{"cl_and_te", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
        rejected_case{"te_and_cl", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400},
        rejected_case{"conflicting_cl", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400},
        rejected_case{"signed_cl", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\n", 400},
        rejected_case{"te_not_last", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n", 400},
        rejected_case{"te_gzip", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
        rejected_case{"te_gzip_chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
        rejected_case{"te_gzip_line_then_chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", 501},
        rejected_case{"te_chunked_junk", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked x\r\n\r\n", 400},
        rejected_case{"te_chunked_bad_param", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked;foo\r\n\r\n", 400},
        rejected_case{"te_chunked_param", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked;a=b\r\n\r\n", 400},
        rejected_case{"te_trailing_comma", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked,\r\n\r\n", 400},
        rejected_case{"te_empty_line_then_chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \r\nTransfer-Encoding: chunked\r\n\r\n", 400},
        rejected_case{"no_host", "GET / HTTP/1.1\r\nX: y\r\n\r\n", 400},
        rejected_case{"two_hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
        rejected_case{"obs_fold", "GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", 400},
        rejected_case{"bare_lf", "GET / HTTP/1.1\nHost: x\n\n", 400},
        rejected_case{"space_before_colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400},
        rejected_case{"too_many_fields", "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\n\r\n", 431},
        rejected_case{"head_too_large", "GET / HTTP/1.1\r\nHost: x\r\nX: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n", 431},
        rejected_case{"body_too_large", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n", 413},
        rejected_case{"http2_version", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505},
        rejected_case{"http3_version", "GET / HTTP/3.0\r\nHost: x\r\n\r\n", 505},
        rejected_case{"http0_version", "GET / HTTP/0.9\r\nHost: x\r\n\r\n", 505},
        rejected_case{"empty_version", "GET / \r\n\r\n", 400},
        rejected_case{"empty_version_line_only", "GET / \r\n", 400},
        rejected_case{"two_digit_minor", "GET / HTTP/1.10\r\nHost: x\r\n\r\n", 400},
        rejected_case{"lowercase_version", "GET / http/1.1\r\nHost: x\r\n\r\n", 400},
        rejected_case{"bad_method", "G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        rejected_case{"http10_chunked", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
        rejected_case{"two_content_types", "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: a/b\r\nContent-Type: c/d\r\n\r\n", 400},
        rejected_case{"relative_target", "GET foo/bar HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        rejected_case{"asterisk_not_options", "GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        rejected_case{"authority_not_connect", "GET example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n", 400}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(request_parser, nul_in_value_is_400) {
    static const char raw[] = "GET / HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n";
    static const std::string input(raw, sizeof raw - 1);
    auto r = parse(input);
    ASSERT_TRUE(r.ec);
    EXPECT_EQ(status_for_parse_error(r.ec), 400u);
}

TEST(request_parser, chunked_body_over_limit_is_413) {
    auto r = parse("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n80\r\n" + std::string(128, 'a') + "\r\n0\r\n\r\n",
                   8192, 100, 100);
    ASSERT_TRUE(r.ec);
    EXPECT_EQ(status_for_parse_error(r.ec), 413u);
}

// RFC 9110 2.5 / RFC 9112 2.3: a higher minor version of HTTP/1 is served
// as the highest one implemented (issue 10 item 12).
TEST(request_parser, http_1_2_is_served_as_1_1) {
    for (const char* v : {"1.2", "1.9"}) {
        auto r = parse(std::string("GET / HTTP/") + v + "\r\nHost: x\r\n\r\n");
        ASSERT_FALSE(r.ec) << v << ": " << r.ec.message();
        EXPECT_EQ(r.head.version, 11u) << v;
        EXPECT_TRUE(r.head.keep_alive) << v;
    }
}

TEST(request_parser, a_version_is_judged_in_pieces_too) {
    // The request line first, alone: Beast parses (and consumes) it before
    // the head is complete; the field lines that follow are not request lines.
    request_parser p(8192, 100, 1 << 20);
    std::string a = "GET / HTTP/1.1\r\nHo";
    boost::system::error_code ec;
    std::size_t n = p.put_head(boost::asio::buffer(a.data(), a.size()), ec);
    ASSERT_EQ(ec, http::error::need_more);
    EXPECT_EQ(n, 16u);   // the request line is gone from the buffer
    std::string b = a.substr(n) + "st: x y\r\nX-A: b\r\n";
    n = p.put_head(boost::asio::buffer(b.data(), b.size()), ec);
    ASSERT_EQ(ec, http::error::need_more) << ec.message();
    std::string c = b.substr(n) + "\r\n";
    p.put_head(boost::asio::buffer(c.data(), c.size()), ec);
    ASSERT_FALSE(ec) << ec.message();
    EXPECT_TRUE(p.is_header_done());
}

TEST(request_parser, a_version_is_judged_once_its_line_is_complete) {
    std::string partial = "GET / HTTP/1.1\r\nHost: x\r\n";   // the head goes on
    EXPECT_FALSE(check_request_line(partial.data(), partial.size()));
    std::string unfinished = "GET / HTT";                       // the line goes on
    EXPECT_FALSE(check_request_line(unfinished.data(), unfinished.size()));
    std::string empty = "GET / \r\n";
    EXPECT_EQ(status_for_parse_error(check_request_line(empty.data(), empty.size())), 400u);
}

} // namespace
} // namespace trestle::net
