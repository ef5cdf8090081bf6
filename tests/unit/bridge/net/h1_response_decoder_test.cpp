// h1_response_decoder: the HTTP/1.1 bytes response_writer makes, read back
// as an HTTP/2 stream's parts, whole or one byte at a time.
#include "bridge/net/h1_response_decoder.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace trestle::net {
namespace {

struct recorder final : h1_response_decoder::sink {
    std::vector<std::string> events;
    std::string body;
    void on_head(unsigned status, h1_response_decoder::fields f, bool final) override {
        std::string e = (final ? "head " : "interim ") + std::to_string(status);
        for (auto& [n, v] : f) e += " " + n + "=" + v;
        events.push_back(e);
    }
    void on_body(std::string_view d) override { body.append(d); }
    void on_end(h1_response_decoder::fields t) override {
        std::string e = "end";
        for (auto& [n, v] : t) e += " " + n + "=" + v;
        events.push_back(e);
    }
};

// Feeds `in` whole, then again a byte at a time: both must agree.
void both_ways(const std::string& in, bool head_request, const std::vector<std::string>& events,
               const std::string& body, bool finish = false) {
    for (bool bytewise : {false, true}) {
        h1_response_decoder d(head_request);
        recorder r;
        if (bytewise) {
            for (char c : in) ASSERT_TRUE(d.feed(std::string_view(&c, 1), r)) << in;
        } else {
            ASSERT_TRUE(d.feed(in, r));
        }
        if (finish) EXPECT_TRUE(d.finish(r));
        EXPECT_EQ(r.events, events) << (bytewise ? "byte by byte" : "whole");
        EXPECT_EQ(r.body, body);
        EXPECT_TRUE(d.complete());
    }
}

TEST(h1_response_decoder_test, sized_body_and_connection_fields_dropped) {
    both_ways("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\nKeep-Alive: x\r\n"
              "Content-Length: 5\r\n\r\nhello",
              false, {"head 200 content-type=text/plain content-length=5", "end"}, "hello");
}

TEST(h1_response_decoder_test, chunked_body_with_trailers) {
    both_ways("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1;ext=1\r\n!\r\n"
              "0\r\nX-Checksum: abc\r\n\r\n",
              false, {"head 200", "end x-checksum=abc"}, "hello!");
}

TEST(h1_response_decoder_test, chunked_body_without_trailers) {
    both_ways("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n0\r\n\r\n", false,
              {"head 200", "end"}, "0123456789");
}

TEST(h1_response_decoder_test, interim_heads_then_the_final_one) {
    both_ways("HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
              "HTTP/1.1 204 No Content\r\nServer: t\r\n\r\n",
              false, {"interim 103 link=</a.css>; rel=preload", "head 204 server=t", "end"}, "");
}

TEST(h1_response_decoder_test, head_request_has_no_body_whatever_the_length) {
    both_ways("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", true, {"head 200 content-length=1000", "end"}, "");
}

TEST(h1_response_decoder_test, body_until_the_end) {
    both_ways("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nsome bytes", false, {"head 200", "end"}, "some bytes", true);
}

TEST(h1_response_decoder_test, a_file_sent_aside_is_counted) {
    h1_response_decoder d(false);
    recorder r;
    ASSERT_TRUE(d.feed("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", r));
    EXPECT_FALSE(d.complete());
    d.skip(100, r);
    EXPECT_TRUE(d.complete());
    EXPECT_EQ(r.events.back(), "end");
}

TEST(h1_response_decoder_test, malformed_input_is_refused) {
    for (std::string bad : {"HTTP/2 200\r\n\r\n", "HTTP/1.1 20x OK\r\n\r\n", "HTTP/1.1 101 Switching\r\n\r\n",
                            "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
                            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nab"}) {
        h1_response_decoder d(false);
        recorder r;
        EXPECT_FALSE(d.feed(bad, r)) << bad;
    }
    // Cut short: the app finished before the body did.
    h1_response_decoder d(false);
    recorder r;
    ASSERT_TRUE(d.feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", r));
    EXPECT_FALSE(d.finish(r));
}

} // namespace
} // namespace trestle::net
