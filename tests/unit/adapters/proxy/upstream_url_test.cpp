#include "adapters/proxy/upstream_url.hpp"

#include <gtest/gtest.h>

namespace trestle::proxy {
namespace {

upstream_url parse_ok(std::string_view text) {
    upstream_url u;
    std::string why;
    EXPECT_TRUE(parse_upstream_url(text, u, why)) << text << ": " << why;
    return u;
}

std::string parse_error(std::string_view text) {
    upstream_url u;
    std::string why;
    EXPECT_FALSE(parse_upstream_url(text, u, why)) << text;
    return why;
}

TEST(upstream_url, host_and_port) {
    auto u = parse_ok("http://127.0.0.1:9001");
    EXPECT_EQ(u.host, "127.0.0.1");
    EXPECT_EQ(u.port, 9001);
    EXPECT_FALSE(u.path);
    EXPECT_EQ(u.authority, "127.0.0.1:9001");
}

TEST(upstream_url, default_port_is_left_out_of_the_authority) {
    auto u = parse_ok("http://billing.internal");
    EXPECT_EQ(u.port, 80);
    EXPECT_EQ(u.authority, "billing.internal");
    EXPECT_EQ(parse_ok("http://billing.internal:80").authority, "billing.internal");
}

TEST(upstream_url, a_path_even_slash_is_kept) {
    EXPECT_EQ(parse_ok("http://h:1/").path, "/");
    EXPECT_EQ(parse_ok("http://h:1/api/v1").path, "/api/v1");
    EXPECT_FALSE(parse_ok("http://h:1").path);
}

TEST(upstream_url, ipv6_literals) {
    auto u = parse_ok("http://[::1]:8080/x");
    EXPECT_EQ(u.host, "::1");
    EXPECT_EQ(u.port, 8080);
    EXPECT_EQ(u.authority, "[::1]:8080");
    EXPECT_EQ(parse_ok("http://[fe80::1]").authority, "[fe80::1]");
}

TEST(upstream_url, refuses_what_it_cannot_use) {
    EXPECT_NE(parse_error("https://h").find("https"), std::string::npos);
    EXPECT_NE(parse_error("ftp://h").find("'ftp://h'"), std::string::npos);
    parse_error("http://");
    parse_error("http://:80");
    parse_error("http://h:");
    parse_error("http://h:0");
    parse_error("http://h:65536");
    parse_error("http://h:8x");
    parse_error("http://user:pw@h");
    parse_error("http://h/p?q=1");
    parse_error("http://h/p#f");
    parse_error("http://h/a b");
    parse_error("http://[::1");
    parse_error("http://[::1]x");
    parse_error("http://h h");
}

TEST(upstream_url, error_is_one_line) {
    std::string why = parse_error("http://h:99999");
    EXPECT_EQ(why.find('\n'), std::string::npos);
    EXPECT_NE(why.find("http://h:99999"), std::string::npos);
}

} // namespace
} // namespace trestle::proxy
