#include "adapters/static/range.hpp"

#include <gtest/gtest.h>

namespace trestle::statics {
namespace {

using kind = range_request::kind;

void expect_single(std::string_view field, std::uint64_t size, std::uint64_t first, std::uint64_t last) {
    auto r = parse_range(field, size);
    ASSERT_EQ(r.type, kind::single) << field;
    EXPECT_EQ(r.first, first) << field;
    EXPECT_EQ(r.last, last) << field;
}

TEST(parse_range, the_three_forms) {
    expect_single("bytes=0-9", 100, 0, 9);
    expect_single("bytes=90-", 100, 90, 99);
    expect_single("bytes=-10", 100, 90, 99);
    expect_single("BYTES=5-5", 100, 5, 5);
}

TEST(parse_range, clamps_to_the_content) {
    expect_single("bytes=50-1000", 100, 50, 99);
    expect_single("bytes=-1000", 100, 0, 99);
    expect_single("bytes=0-99999999999999999999999999", 100, 0, 99);
}

TEST(parse_range, unsatisfiable) {
    EXPECT_EQ(parse_range("bytes=100-", 100).type, kind::unsatisfiable);
    EXPECT_EQ(parse_range("bytes=200-300", 100).type, kind::unsatisfiable);
    EXPECT_EQ(parse_range("bytes=-0", 100).type, kind::unsatisfiable);
    EXPECT_EQ(parse_range("bytes=0-", 0).type, kind::unsatisfiable);
    EXPECT_EQ(parse_range("bytes=-5", 0).type, kind::unsatisfiable);
    EXPECT_EQ(parse_range("bytes=99999999999999999999999-", 100).type, kind::unsatisfiable);
    EXPECT_EQ(parse_range("bytes=150-160, 200-", 100).type, kind::unsatisfiable);
}

TEST(parse_range, invalid_fields_are_ignored) {
    for (const char* f : {"", "bytes", "bytes=", "bytes=,", "items=0-5", "bytes=a-b", "bytes=5-2", "bytes=-",
                          "bytes=1-2-3", "bytes=0x10-", "bytes=+1-2", "bytes=1 -2", "bytes 0-5", "bytes=0-5,7"}) {
        EXPECT_EQ(parse_range(f, 100).type, kind::whole) << f;
    }
}

TEST(parse_range, several_ranges) {
    // Touching or overlapping: one piece.
    expect_single("bytes=0-9,10-19", 100, 0, 19);
    expect_single("bytes=10-19, 0-14", 100, 0, 19);
    expect_single("bytes= 0-4 , , 2-8 ", 100, 0, 8);
    // Unsatisfiable ones are dropped first.
    expect_single("bytes=0-4, 500-600", 100, 0, 4);
    // A gap: the whole content.
    EXPECT_EQ(parse_range("bytes=0-4,10-14", 100).type, kind::whole);
    EXPECT_EQ(parse_range("bytes=0-0,-1", 100).type, kind::whole);
}

} // namespace
} // namespace trestle::statics
