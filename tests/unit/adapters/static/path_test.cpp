#include "adapters/static/path.hpp"

#include <gtest/gtest.h>

namespace trestle::statics {
namespace {

// file_path() gets the rest of the path already decoded by the core
// (tests/unit/bridge/net/request_path_test.cpp has the decoding rules).
TEST(file_path, plain_paths) {
    auto p = file_path("/css/site.css");
    EXPECT_EQ(p.status, 0u);
    EXPECT_EQ(p.rel, "css/site.css");
    EXPECT_FALSE(p.trailing_slash);

    p = file_path("/a b/caf\xC3\xA9.txt");
    EXPECT_EQ(p.status, 0u);
    EXPECT_EQ(p.rel, "a b/caf\xC3\xA9.txt");
}

TEST(file_path, the_mount_itself_and_directories) {
    auto p = file_path("");
    EXPECT_EQ(p.status, 0u);
    EXPECT_EQ(p.rel, "");
    EXPECT_FALSE(p.trailing_slash);

    p = file_path("/");
    EXPECT_EQ(p.rel, "");
    EXPECT_TRUE(p.trailing_slash);

    p = file_path("/docs/");
    EXPECT_EQ(p.rel, "docs");
    EXPECT_TRUE(p.trailing_slash);

    p = file_path("/docs/.");
    EXPECT_EQ(p.rel, "docs");
    EXPECT_TRUE(p.trailing_slash);
}

TEST(file_path, empty_and_dot_segments_are_dropped) {
    auto p = file_path("//a/./b//c");
    EXPECT_EQ(p.status, 0u);
    EXPECT_EQ(p.rel, "a/b/c");
    EXPECT_FALSE(p.trailing_slash);
}

TEST(file_path, dot_dot_is_400) {
    for (const char* rest : {"/..", "/../etc/passwd", "/a/../../b", "/a/.."}) {
        auto p = file_path(rest);
        EXPECT_EQ(p.status, 400u) << rest;
        EXPECT_EQ(p.rel, "") << rest;
    }
}

TEST(file_path, names_that_merely_contain_dots_or_percents_are_fine) {
    EXPECT_EQ(file_path("/...").rel, "...");
    EXPECT_EQ(file_path("/..a").rel, "..a");
    EXPECT_EQ(file_path("/a..").rel, "a..");
    EXPECT_EQ(file_path("/.hidden").rel, ".hidden");
    // Decoded once already: "%2e%2e" here is a file named so, not "..".
    EXPECT_EQ(file_path("/%2e%2e/x").rel, "%2e%2e/x");
}

TEST(file_path, backslash_and_nul_are_400) {
    for (std::string rest : {std::string("/a\\b"), std::string("/..\\x"), std::string("/a\0b", 4)})
        EXPECT_EQ(file_path(rest).status, 400u) << rest;
}

TEST(file_path, invalid_utf8_and_overlong_forms_are_400) {
    for (const char* rest : {"/\xc0\xae\xc0\xae/x", "/\xc0\xaf", "/\xe0\x80\xae", "/\xff", "/\x80", "/\xed\xa0\x80",
                             "/\xf4\x90\x80\x80", "/\xc3"}) {
        EXPECT_EQ(file_path(rest).status, 400u) << rest;
    }
}

TEST(file_path, the_rest_must_start_with_a_slash) {
    EXPECT_EQ(file_path("*").status, 400u);
    EXPECT_EQ(file_path("a/b").status, 400u);
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
