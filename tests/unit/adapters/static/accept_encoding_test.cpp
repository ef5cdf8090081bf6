#include "adapters/static/accept_encoding.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace trestle::statics {
namespace {

std::vector<coding> order(std::string_view field) {
    auto a = parse_accept_encoding(field);
    return {a.order.begin(), a.order.begin() + static_cast<std::ptrdiff_t>(a.count)};
}

using V = std::vector<coding>;

TEST(parse_accept_encoding, plain_lists) {
    EXPECT_EQ(order("gzip, deflate, br"), (V{coding::br, coding::gzip}));
    EXPECT_EQ(order("gzip"), (V{coding::gzip}));
    EXPECT_EQ(order("BR"), (V{coding::br}));
    EXPECT_EQ(order("x-gzip"), (V{coding::gzip}));
    EXPECT_EQ(order("deflate, identity"), V{});
    EXPECT_EQ(order(""), V{});
}

TEST(parse_accept_encoding, q_zero_refuses) {
    EXPECT_EQ(order("br;q=0, gzip"), (V{coding::gzip}));
    EXPECT_EQ(order("gzip;q=0.000, br;q=0"), V{});
    EXPECT_EQ(order("*;q=0"), V{});
    EXPECT_EQ(order("*, br;q=0"), (V{coding::gzip}));
    EXPECT_EQ(order("gzip; Q=0"), V{});
}

TEST(parse_accept_encoding, q_orders_the_choice) {
    EXPECT_EQ(order("br;q=0.5, gzip;q=0.8"), (V{coding::gzip, coding::br}));
    EXPECT_EQ(order("gzip;q=1.0, br;q=1"), (V{coding::br, coding::gzip}));
    EXPECT_EQ(order("*;q=0.3, gzip"), (V{coding::gzip, coding::br}));
    EXPECT_EQ(order("gzip ; q=0.001"), (V{coding::gzip}));
}

TEST(parse_accept_encoding, malformed_q_is_refusal) {
    EXPECT_EQ(order("gzip;q=2"), V{});
    EXPECT_EQ(order("gzip;q=abc"), V{});
    EXPECT_EQ(order("gzip;q=0.0001"), V{});
    EXPECT_EQ(order("gzip;q=1.5, br"), (V{coding::br}));
    EXPECT_EQ(order("gzip;level=9"), (V{coding::gzip}));   // other parameters are ignored
}

} // namespace
} // namespace trestle::statics
