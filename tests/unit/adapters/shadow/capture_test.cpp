#include "adapters/shadow/capture.hpp"
#include "adapters/shadow/mirror.hpp"

#include <gtest/gtest.h>

namespace trestle::shadow {
namespace {

TEST(shadow_capture, a_sized_response_fed_in_pieces) {
    response_capture c(false, 1024);
    std::string r = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}";
    for (char ch : r) c.feed(std::string_view(&ch, 1));
    c.finish();
    auto& got = c.result();
    EXPECT_TRUE(got.complete);
    EXPECT_EQ(got.status, 200u);
    EXPECT_EQ(got.body, "{\"a\":1}");
    ASSERT_NE(got.field("content-type"), nullptr);
    EXPECT_EQ(*got.field("content-type"), "application/json");
}

TEST(shadow_capture, past_the_cap_only_size_and_digest_are_kept) {
    auto make = [](char last) {
        response_capture c(false, 4);
        std::string body(100, 'x');
        body.back() = last;
        c.feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n" + body + "\r\n0\r\n\r\n");
        c.finish();
        return c.result();
    };
    captured_response a = make('x'), b = make('y'), a2 = make('x');
    EXPECT_TRUE(a.complete);
    EXPECT_EQ(a.size, 100u);
    EXPECT_EQ(a.body, "xxxx");
    EXPECT_TRUE(a.truncated());
    EXPECT_TRUE(a.same_as(a2, {"content-type"}));
    EXPECT_FALSE(a.same_as(b, {}));   // same first bytes, same size: the digest tells them apart
}

TEST(shadow_capture, interim_heads_are_not_compared_and_a_cut_response_is_incomplete) {
    response_capture c(false, 1024);
    c.feed("HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 10\r\n\r\nabc");
    c.finish();
    EXPECT_EQ(c.result().status, 404u);
    EXPECT_FALSE(c.result().complete);
    EXPECT_EQ(c.result().field("link"), nullptr);
}

TEST(shadow_capture, a_field_outside_the_compared_set_does_not_count) {
    auto make = [](const char* date) {
        response_capture c(false, 64);
        c.feed(std::string("HTTP/1.1 200 OK\r\nDate: ") + date + "\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok");
        c.finish();
        return c.result();
    };
    EXPECT_TRUE(make("Mon").same_as(make("Tue"), {"content-type"}));
    EXPECT_FALSE(make("Mon").same_as(make("Tue"), {"content-type", "date"}));
}

TEST(shadow_latency, quantiles_land_in_buckets_nine_percent_wide) {
    latency_histogram h;
    EXPECT_EQ(h.quantile(0.5), 0.0);
    for (int i = 0; i < 99; ++i) h.add(0.001);
    h.add(0.5);
    EXPECT_EQ(h.count(), 100u);
    double p50 = h.quantile(0.5), p99 = h.quantile(0.99), p100 = h.quantile(1.0);
    EXPECT_GE(p50, 0.001);
    EXPECT_LT(p50, 0.001 * 1.1);
    EXPECT_EQ(p99, p50);
    EXPECT_GE(p100, 0.5);
    EXPECT_LT(p100, 0.5 * 1.1);
    h.add(1e-9);      // below the first bound
    h.add(1e6);       // past the last
    EXPECT_GT(h.quantile(1.0), 50.0);
}

} // namespace
} // namespace trestle::shadow
