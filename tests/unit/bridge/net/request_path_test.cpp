#include "bridge/net/request_path.hpp"

#include <gtest/gtest.h>

namespace trestle::net {
namespace {

std::string decoded(std::string_view raw, unsigned want_status = 0) {
    std::string out;
    EXPECT_EQ(decode_path(raw, out), want_status) << raw;
    return out;
}

TEST(decode_path, decodes_every_escape_once) {
    EXPECT_EQ(decoded("/%76%32/x"), "/v2/x");
    EXPECT_EQ(decoded("/caf%C3%A9/a%20b"), "/caf\xC3\xA9/a b");
    EXPECT_EQ(decoded("/%252e%252e/x"), "/%2e%2e/x");   // once only
    EXPECT_EQ(decoded("/a%zz/%4"), "/a%zz/%4");          // invalid escapes stay as written
}

TEST(decode_path, an_encoded_slash_is_a_slash) {
    EXPECT_EQ(decoded("/static%2Fa.txt"), "/static/a.txt");
    EXPECT_EQ(decoded("/a%2fb"), "/a/b");
}

TEST(decode_path, an_encoded_nul_is_400) {
    for (const char* raw : {"/a%00", "/files/secret.txt%00.png", "/%00/x"}) decoded(raw, 400);
}

TEST(decode_path, dot_dot_in_any_spelling_is_400) {
    for (const char* raw : {"/..", "/a/../b", "/a/..", "/%2e%2e/x", "/%2E%2e/x", "/.%2e/x", "/a%2F..%2Fb", "/a%2f%2e%2e"})
        decoded(raw, 400);
    for (const char* raw : {"/...", "/..a", "/a..", "/.", "/./x", "/.well-known"}) decoded(raw, 0);
}

TEST(decode_prefix, decodes_and_normalizes) {
    std::string why;
    std::string p = "/v2/";
    ASSERT_TRUE(decode_prefix(p, why));
    EXPECT_EQ(p, "/v2");
    p = "/";
    ASSERT_TRUE(decode_prefix(p, why));
    EXPECT_EQ(p, "");
    p = "/my%20app";
    ASSERT_TRUE(decode_prefix(p, why));
    EXPECT_EQ(p, "/my app");
    p = "/caf\xC3\xA9//./x";
    ASSERT_TRUE(decode_prefix(p, why));
    EXPECT_EQ(p, "/caf\xC3\xA9/x");
    p = "/a%2Fb";
    ASSERT_TRUE(decode_prefix(p, why));
    EXPECT_EQ(p, "/a/b");
}

TEST(decode_prefix, refuses_what_cannot_be_a_path) {
    for (const char* raw : {"", "v2", "/a?b", "/a#b", "/a\tb", "/a%00", "/a/../b", "/a/%2e%2e"}) {
        std::string p = raw, why;
        EXPECT_FALSE(decode_prefix(p, why)) << raw;
        EXPECT_FALSE(why.empty());
    }
}

TEST(match_prefix, whole_segments_of_the_decoded_path) {
    EXPECT_EQ(match_prefix("/v2/x", "/v2"), 3u);
    EXPECT_EQ(match_prefix("/v2", "/v2"), 3u);
    EXPECT_EQ(match_prefix("/v2/", "/v2"), 3u);
    EXPECT_EQ(match_prefix("/v2/deep/x", "/v2/deep"), 8u);
    EXPECT_FALSE(match_prefix("/v20", "/v2"));
    EXPECT_FALSE(match_prefix("/v", "/v2"));
    EXPECT_FALSE(match_prefix("/x/v2", "/v2"));
    EXPECT_FALSE(match_prefix("*", "/v2"));
    EXPECT_EQ(match_prefix("/anything", ""), 0u);
    EXPECT_EQ(match_prefix("*", ""), 0u);
}

TEST(match_prefix, empty_and_dot_segments_do_not_hide_a_prefix) {
    EXPECT_EQ(match_prefix("//v2/x", "/v2"), 4u);
    EXPECT_EQ(match_prefix("/./v2//x", "/v2"), 5u);
    EXPECT_EQ(match_prefix("/a//./b/c", "/a/b"), 7u);
    EXPECT_FALSE(match_prefix("/./", "/v2"));
}

TEST(raw_rest, drops_as_many_segments_as_the_decoded_prefix_had) {
    EXPECT_EQ(raw_rest("/up/a%20b", 1), "/a%20b");
    EXPECT_EQ(raw_rest("/up%2Fa%2Fb", 1), "/a%2Fb");
    EXPECT_EQ(raw_rest("/%75p/x", 1), "/x");
    EXPECT_EQ(raw_rest("/up", 1), "");
    EXPECT_EQ(raw_rest("/up%2F", 1), "/");
    EXPECT_EQ(raw_rest("//up//x", 2), "//x");
}

TEST(encode_path, escapes_what_is_not_a_path_character) {
    EXPECT_EQ(encode_path("/my app/caf\xC3\xA9?#%"), "/my%20app/caf%C3%A9%3F%23%25");
    EXPECT_EQ(encode_path("/keep-._~!$&'()*+,;=:@"), "/keep-._~!$&'()*+,;=:@");
    EXPECT_EQ(encode_path(std::string("\r\n", 2)), "%0D%0A");   // a static mount's Location header
}

} // namespace
} // namespace trestle::net
