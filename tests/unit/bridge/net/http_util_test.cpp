#include "bridge/net/http_util.hpp"
#include "bridge/net/request.hpp"

#include <gtest/gtest.h>

namespace trestle::net {
namespace {

TEST(percent_decode, decodes_escapes_and_keeps_invalid_ones) {
    std::string out;
    ASSERT_TRUE(percent_decode("/a%20b%2Fc%zz%4", out));
    EXPECT_EQ(out, "/a b/c%zz%4");
    ASSERT_TRUE(percent_decode("/caf%C3%A9", out));
    EXPECT_EQ(out, "/caf\xC3\xA9");
}

TEST(percent_decode, refuses_nul) {
    std::string out;
    EXPECT_FALSE(percent_decode("/a%00b", out));
}

TEST(request_head, splits_absolute_form_and_fragment) {
    request_head h;
    h.target = "http://example.com/p/q?x=1#frag";
    EXPECT_EQ(h.path(), "/p/q");
    EXPECT_EQ(h.query(), "x=1");
    h.target = "/only#f";
    EXPECT_EQ(h.path(), "/only");
    EXPECT_EQ(h.query(), "");
}

TEST(simple_response, is_complete_and_closes_when_asked) {
    std::string r = simple_response(503, "trestle", true, "Retry-After: 1\r\n");
    EXPECT_EQ(r.rfind("HTTP/1.1 503 Service Unavailable\r\n", 0), 0u);
    EXPECT_NE(r.find("Retry-After: 1\r\n"), std::string::npos);
    EXPECT_NE(r.find("Connection: close\r\n"), std::string::npos);
    EXPECT_NE(r.find("Content-Length: 24\r\n"), std::string::npos);
    EXPECT_EQ(r.substr(r.size() - 24), "503 Service Unavailable\n");
}

TEST(simple_response, head_has_no_body) {
    std::string r = simple_response(404, "", false, {}, true);
    EXPECT_EQ(r.find("Server:"), std::string::npos);
    EXPECT_EQ(r.substr(r.size() - 4), "\r\n\r\n");
}

TEST(hop_by_hop, names_are_case_insensitive) {
    EXPECT_TRUE(is_hop_by_hop("Connection"));
    EXPECT_TRUE(is_hop_by_hop("transfer-encoding"));
    EXPECT_TRUE(is_hop_by_hop("Keep-Alive"));
    EXPECT_FALSE(is_hop_by_hop("Content-Length"));
}

TEST(http_date, has_imf_fixdate_shape) {
    auto d = http_date();
    ASSERT_EQ(d.size(), 29u);
    EXPECT_EQ(d.substr(25), " GMT");
}

TEST(http_util, valid_field_value_allows_text_tab_and_obs_text_only) {
    EXPECT_TRUE(valid_field_value(""));
    EXPECT_TRUE(valid_field_value("text/html; charset=utf-8"));
    EXPECT_TRUE(valid_field_value("a\tb"));
    EXPECT_TRUE(valid_field_value("caf\xe9 \xff"));   // obs-text
    for (int c = 0; c < 0x20; ++c) {
        if (c == '\t') continue;
        std::string v = "a";
        v += static_cast<char>(c);
        EXPECT_FALSE(valid_field_value(v)) << c;
    }
    EXPECT_FALSE(valid_field_value("a\x7f"));
}

TEST(transfer_encoding, the_whole_value_is_checked) {
    using tc = transfer_coding;
    struct c { const char* v; tc want; };
    for (auto [v, want] : {
             c{"chunked", tc::chunked}, c{"Chunked", tc::chunked}, c{" chunked\t", tc::chunked},
             c{"gzip, chunked", tc::unsupported}, c{"gzip,chunked", tc::unsupported},
             c{"compress", tc::unsupported}, c{"gzip;q=\"a\\\"b\", chunked", tc::unsupported},
             c{"x ; a = b , chunked", tc::unsupported}, c{"chunked, junk", tc::malformed},
             c{"", tc::malformed}, c{" ", tc::malformed}, c{"chunked x", tc::malformed},
             c{"chunked;foo", tc::malformed}, c{"chunked;a=b", tc::malformed}, c{"chunked;a=", tc::malformed},
             c{"chunked,", tc::malformed}, c{",chunked", tc::malformed}, c{"gzip,,chunked", tc::malformed},
             c{"chunked, chunked", tc::malformed}, c{"chunked, gzip", tc::malformed},
             c{"gzip;q=\"open, chunked", tc::malformed}, c{"chun\x01ked", tc::malformed},
             c{"chunked\"", tc::malformed}, c{"gzip;q=\"\x01\", chunked", tc::malformed}}) {
        EXPECT_EQ(check_transfer_encoding(v), want) << "'" << v << "'";
    }
}

} // namespace
} // namespace trestle::net
