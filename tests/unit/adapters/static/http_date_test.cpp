#include "adapters/static/http_date.hpp"

#include <gtest/gtest.h>

namespace trestle::statics {
namespace {

constexpr std::time_t rfc_example = 784111777;   // Sun, 06 Nov 1994 08:49:37 GMT

TEST(http_date, formats_imf_fixdate) {
    EXPECT_EQ(format_http_date(rfc_example), "Sun, 06 Nov 1994 08:49:37 GMT");
    EXPECT_EQ(format_http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
}

TEST(http_date, reads_the_three_forms) {
    EXPECT_EQ(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), rfc_example);
    EXPECT_EQ(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), rfc_example);
    EXPECT_EQ(parse_http_date("Sun Nov  6 08:49:37 1994"), rfc_example);
    EXPECT_EQ(parse_http_date("Thu, 01 Jan 2032 00:00:00 GMT"), 1956528000);
}

TEST(http_date, round_trips) {
    for (std::time_t t : {std::time_t{0}, rfc_example, std::time_t{1700000000}, std::time_t{4102444799}})
        EXPECT_EQ(parse_http_date(format_http_date(t)), t);
}

TEST(http_date, refuses_anything_else) {
    for (const char* s : {"", "yesterday", "Sun, 06 Nov 1994 08:49:37", "Sun, 06 Nov 1994 08:49:37 UTC",
                          "Sun, 6 Nov 1994 08:49:37 GMT", "Sun, 06 Foo 1994 08:49:37 GMT", "Sun, 31 Apr 1994 08:49:37 GMT",
                          "Sun, 29 Feb 1995 08:49:37 GMT", "Sun, 06 Nov 1994 24:49:37 GMT", "Sun, 06 Nov 1994 08:49:37 GMT x",
                          "1994-11-06T08:49:37Z"}) {
        EXPECT_FALSE(parse_http_date(s).has_value()) << s;
    }
}

} // namespace
} // namespace trestle::statics
