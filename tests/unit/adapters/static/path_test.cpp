#include "adapters/static/path.hpp"

#include <gtest/gtest.h>

namespace trestle::statics {
namespace {

TEST(decode_request_path, plain_paths) {
    auto p = decode_request_path("/css/site.css");
    EXPECT_EQ(p.status, 0u);
    EXPECT_EQ(p.rel, "css/site.css");
    EXPECT_FALSE(p.trailing_slash);

    p = decode_request_path("/a%20b/caf%C3%A9.txt");
    EXPECT_EQ(p.status, 0u);
    EXPECT_EQ(p.rel, "a b/caf\xC3\xA9.txt");
}

TEST(decode_request_path, the_mount_itself_and_directories) {
    auto p = decode_request_path("");
    EXPECT_EQ(p.status, 0u);
    EXPECT_EQ(p.rel, "");
    EXPECT_FALSE(p.trailing_slash);

    p = decode_request_path("/");
    EXPECT_EQ(p.rel, "");
    EXPECT_TRUE(p.trailing_slash);

    p = decode_request_path("/docs/");
    EXPECT_EQ(p.rel, "docs");
    EXPECT_TRUE(p.trailing_slash);

    p = decode_request_path("/docs/.");
    EXPECT_EQ(p.rel, "docs");
    EXPECT_TRUE(p.trailing_slash);
}

TEST(decode_request_path, empty_and_dot_segments_are_dropped) {
    auto p = decode_request_path("//a/./b//c");
    EXPECT_EQ(p.status, 0u);
    EXPECT_EQ(p.rel, "a/b/c");
    EXPECT_FALSE(p.trailing_slash);
    EXPECT_EQ(decode_request_path("/a/%2e/b").rel, "a/b");
}

TEST(decode_request_path, dot_dot_in_any_spelling_is_400) {
    for (const char* raw : {"/..", "/../etc/passwd", "/a/../../b", "/a/..", "/%2e%2e/x", "/%2E%2E/x", "/.%2e/x",
                            "/%2e./x", "/a/%2e%2e"}) {
        auto p = decode_request_path(raw);
        EXPECT_EQ(p.status, 400u) << raw;
        EXPECT_EQ(p.rel, "") << raw;
    }
}

TEST(decode_request_path, names_that_merely_contain_dots_are_fine) {
    EXPECT_EQ(decode_request_path("/...").rel, "...");
    EXPECT_EQ(decode_request_path("/..a").rel, "..a");
    EXPECT_EQ(decode_request_path("/a..").rel, "a..");
    EXPECT_EQ(decode_request_path("/.hidden").rel, ".hidden");
}

TEST(decode_request_path, encoded_slash_is_404) {
    EXPECT_EQ(decode_request_path("/a%2fb").status, 404u);
    EXPECT_EQ(decode_request_path("/..%2f..%2fetc").status, 404u);
    EXPECT_EQ(decode_request_path("/%2F").status, 404u);
}

TEST(decode_request_path, backslash_nul_and_bad_escapes_are_400) {
    for (const char* raw : {"/a\\b", "/..\\x", "/a%5cb", "/a%5Cb", "/a%00b", "/a%", "/a%2", "/a%zz", "/a%%32%65",
                            "/a%g0", "/%"}) {
        EXPECT_EQ(decode_request_path(raw).status, 400u) << raw;
    }
}

TEST(decode_request_path, decodes_once_only) {
    auto p = decode_request_path("/%252e%252e/x");
    EXPECT_EQ(p.status, 0u);
    EXPECT_EQ(p.rel, "%2e%2e/x");
}

TEST(decode_request_path, invalid_utf8_and_overlong_forms_are_400) {
    for (const char* raw : {"/%c0%ae%c0%ae/x", "/%c0%af", "/%e0%80%ae", "/%ff", "/%80", "/%ed%a0%80", "/%f4%90%80%80",
                            "/%c3"}) {
        EXPECT_EQ(decode_request_path(raw).status, 400u) << raw;
    }
}

TEST(decode_request_path, target_must_start_with_a_slash) {
    EXPECT_EQ(decode_request_path("*").status, 400u);
    EXPECT_EQ(decode_request_path("a/b").status, 400u);
}

TEST(encode_path, escapes_what_is_not_a_path_character) {
    EXPECT_EQ(encode_path("a b/caf\xC3\xA9?#%"), "a%20b/caf%C3%A9%3F%23%25");
    EXPECT_EQ(encode_path("keep-._~!$&'()*+,;=:@/x"), "keep-._~!$&'()*+,;=:@/x");
    EXPECT_EQ(encode_path(std::string("\r\n", 2)), "%0D%0A");
}

TEST(valid_utf8, accepts_the_whole_range) {
    EXPECT_TRUE(valid_utf8("plain"));
    EXPECT_TRUE(valid_utf8("\xC2\x80"));
    EXPECT_TRUE(valid_utf8("\xE0\xA0\x80"));
    EXPECT_TRUE(valid_utf8("\xEF\xBF\xBF"));
    EXPECT_TRUE(valid_utf8("\xF0\x90\x80\x80"));
    EXPECT_TRUE(valid_utf8("\xF4\x8F\xBF\xBF"));
    EXPECT_FALSE(valid_utf8("\xE2\x82"));   // truncated
}

} // namespace
} // namespace trestle::statics
