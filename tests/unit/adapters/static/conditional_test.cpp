#include "adapters/static/conditional.hpp"

#include "adapters/static/http_date.hpp"

#include <gtest/gtest.h>

namespace trestle::statics {
namespace {

const std::time_t mtime = 1700000000;

validators file() { return {make_etag(42, 100, mtime, 5, ""), mtime}; }

TEST(make_etag, is_strong_and_distinct_per_variant_and_identity) {
    std::string e = make_etag(0x2a, 0x64, 0x6553f100, 5);
    EXPECT_EQ(e, "\"6553f100.5-64-2a\"");
    EXPECT_NE(make_etag(1, 2, 3, 4, "gz"), make_etag(1, 2, 3, 4));
    EXPECT_NE(make_etag(1, 2, 3, 4, "gz"), make_etag(1, 2, 3, 4, "br"));
    EXPECT_NE(make_etag(1, 2, 3, 4), make_etag(1, 2, 3, 5));   // same second, rewritten
    EXPECT_NE(make_etag(1, 2, 3, 4), make_etag(9, 2, 3, 4));   // another file
}

TEST(etag_list_matches, weak_and_strong_comparison) {
    std::string e = file().etag;
    EXPECT_TRUE(etag_list_matches(e, e, tag_compare::weak));
    EXPECT_TRUE(etag_list_matches("W/" + e, e, tag_compare::weak));
    EXPECT_FALSE(etag_list_matches("W/" + e, e, tag_compare::strong));
    EXPECT_TRUE(etag_list_matches("\"x\", " + e, e, tag_compare::strong));
    EXPECT_TRUE(etag_list_matches("\"x\",W/\"y\" ,\t" + e + " ", e, tag_compare::weak));
    EXPECT_TRUE(etag_list_matches(" * ", e, tag_compare::strong));
    EXPECT_FALSE(etag_list_matches("\"x\"", e, tag_compare::weak));
    EXPECT_FALSE(etag_list_matches(e.substr(1, e.size() - 2), e, tag_compare::weak));   // unquoted
    EXPECT_FALSE(etag_list_matches("", e, tag_compare::weak));
}

TEST(evaluate_preconditions, none_sent) {
    EXPECT_EQ(evaluate_preconditions({}, file()), precondition::proceed);
}

TEST(evaluate_preconditions, if_none_match) {
    conditional_fields f;
    f.if_none_match = file().etag;
    EXPECT_EQ(evaluate_preconditions(f, file()), precondition::not_modified);
    f.if_none_match = "W/" + file().etag;
    EXPECT_EQ(evaluate_preconditions(f, file()), precondition::not_modified);
    f.if_none_match = "*";
    EXPECT_EQ(evaluate_preconditions(f, file()), precondition::not_modified);
    f.if_none_match = "\"other\"";
    EXPECT_EQ(evaluate_preconditions(f, file()), precondition::proceed);
}

TEST(evaluate_preconditions, if_modified_since_only_without_if_none_match) {
    conditional_fields f;
    f.if_modified_since = format_http_date(mtime);
    EXPECT_EQ(evaluate_preconditions(f, file()), precondition::not_modified);
    f.if_modified_since = format_http_date(mtime + 3600);
    EXPECT_EQ(evaluate_preconditions(f, file()), precondition::not_modified);
    f.if_modified_since = format_http_date(mtime - 1);
    EXPECT_EQ(evaluate_preconditions(f, file()), precondition::proceed);
    f.if_modified_since = "garbage";
    EXPECT_EQ(evaluate_preconditions(f, file()), precondition::proceed);
    // A non-matching If-None-Match wins over a date that would say 304.
    f.if_modified_since = format_http_date(mtime);
    f.if_none_match = "\"other\"";
    EXPECT_EQ(evaluate_preconditions(f, file()), precondition::proceed);
}

TEST(evaluate_preconditions, if_match_and_if_unmodified_since) {
    conditional_fields f;
    f.if_match = file().etag;
    EXPECT_EQ(evaluate_preconditions(f, file()), precondition::proceed);
    f.if_match = "W/" + file().etag;   // strong comparison
    EXPECT_EQ(evaluate_preconditions(f, file()), precondition::failed);
    f.if_match = "*";
    EXPECT_EQ(evaluate_preconditions(f, file()), precondition::proceed);

    conditional_fields g;
    g.if_unmodified_since = format_http_date(mtime - 1);
    EXPECT_EQ(evaluate_preconditions(g, file()), precondition::failed);
    g.if_unmodified_since = format_http_date(mtime);
    EXPECT_EQ(evaluate_preconditions(g, file()), precondition::proceed);
    // If-Match present: If-Unmodified-Since is not looked at.
    g.if_match = file().etag;
    g.if_unmodified_since = format_http_date(mtime - 1);
    EXPECT_EQ(evaluate_preconditions(g, file()), precondition::proceed);
}

TEST(if_range_holds, etag_strongly_or_the_exact_date) {
    EXPECT_TRUE(if_range_holds(file().etag, file()));
    EXPECT_FALSE(if_range_holds("W/" + file().etag, file()));
    EXPECT_FALSE(if_range_holds("\"other\"", file()));
    EXPECT_FALSE(if_range_holds(file().etag + ", \"x\"", file()));
    EXPECT_TRUE(if_range_holds(format_http_date(mtime), file()));
    EXPECT_FALSE(if_range_holds(format_http_date(mtime + 1), file()));
    EXPECT_FALSE(if_range_holds("*", file()));
    EXPECT_FALSE(if_range_holds("", file()));
}

} // namespace
} // namespace trestle::statics
