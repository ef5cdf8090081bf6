#include "adapters/proxy/balancer.hpp"

#include <gtest/gtest.h>

namespace trestle::proxy {
namespace {

using namespace std::chrono_literals;
const balancer::clock::time_point t0{std::chrono::hours(1)};

std::size_t pick(balancer& b, balancer::clock::time_point now = t0) {
    auto i = b.pick(now, std::vector<bool>(b.size()));
    EXPECT_TRUE(i);
    return i.value_or(99);
}

TEST(balancer, round_robin) {
    balancer b(3, 1, 10s);
    EXPECT_EQ(pick(b), 0u);
    EXPECT_EQ(pick(b), 1u);
    EXPECT_EQ(pick(b), 2u);
    EXPECT_EQ(pick(b), 0u);
}

TEST(balancer, ejects_after_max_fails_in_a_row_for_fail_timeout) {
    balancer b(2, 2, 10s);
    b.failed(0, t0);
    EXPECT_FALSE(b.ejected(0, t0));
    b.succeeded(0);   // not in a row
    b.failed(0, t0);
    EXPECT_FALSE(b.ejected(0, t0));
    b.failed(0, t0);
    EXPECT_TRUE(b.ejected(0, t0));
    for (int i = 0; i < 4; ++i) EXPECT_EQ(pick(b, t0 + 1s), 1u);
    EXPECT_FALSE(b.ejected(0, t0 + 10s));
    EXPECT_EQ(pick(b, t0 + 10s), 0u);
}

TEST(balancer, a_failure_on_probation_ejects_again) {
    balancer b(2, 3, 10s);
    for (int i = 0; i < 3; ++i) b.failed(0, t0);
    EXPECT_TRUE(b.ejected(0, t0 + 9s));
    b.failed(0, t0 + 11s);
    EXPECT_TRUE(b.ejected(0, t0 + 12s));
    b.succeeded(0);
    EXPECT_FALSE(b.ejected(0, t0 + 12s));
}

TEST(balancer, all_ejected_still_picks_one) {
    balancer b(2, 1, 10s);
    b.failed(0, t0);
    b.failed(1, t0);
    auto i = b.pick(t0, {false, false});
    ASSERT_TRUE(i);
}

TEST(balancer, skips_tried_and_ends_when_all_are) {
    balancer b(3, 1, 10s);
    EXPECT_EQ(b.pick(t0, {true, false, true}), 1u);
    EXPECT_FALSE(b.pick(t0, {true, true, true}));
    // An ejected untried upstream is still better than none.
    b.failed(2, t0);
    EXPECT_EQ(b.pick(t0, {true, true, false}), 2u);
}

TEST(balancer, max_fails_zero_never_ejects) {
    balancer b(1, 0, 10s);
    for (int i = 0; i < 10; ++i) b.failed(0, t0);
    EXPECT_FALSE(b.ejected(0, t0));
}

} // namespace
} // namespace trestle::proxy
