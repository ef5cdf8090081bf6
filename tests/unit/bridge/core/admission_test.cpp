#include "bridge/core/admission.hpp"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace trestle {
namespace {

TEST(admission, refuses_past_the_limit_until_a_place_is_given_back) {
    admission a(2);
    EXPECT_TRUE(a.try_enter());
    EXPECT_TRUE(a.try_enter());
    EXPECT_FALSE(a.try_enter());
    EXPECT_EQ(a.in_flight(), 2u);
    EXPECT_EQ(a.refused(), 1u);
    a.leave();
    EXPECT_TRUE(a.try_enter());
    EXPECT_EQ(a.in_flight(), 2u);
}

TEST(admission, a_place_is_given_back_once) {
    admission a(1);
    ASSERT_TRUE(a.try_enter());
    {
        admission::place p(a);
        admission::place moved = std::move(p);
        moved.release();
        EXPECT_EQ(a.in_flight(), 0u);
        moved.release();   // idempotent
        EXPECT_EQ(a.in_flight(), 0u);
    }
    EXPECT_EQ(a.in_flight(), 0u);
    ASSERT_TRUE(a.try_enter());
    { admission::place p(a); }
    EXPECT_EQ(a.in_flight(), 0u);
}

TEST(admission, without_a_limit_nothing_is_counted_or_refused) {
    admission a;
    for (int i = 0; i < 1000; ++i) EXPECT_TRUE(a.try_enter());
    EXPECT_EQ(a.in_flight(), 0u);
}

TEST(admission, never_admits_more_than_the_limit_across_threads) {
    admission a(3);
    std::atomic<int> inside{0}, most{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 8; ++t)
        ts.emplace_back([&] {
            for (int i = 0; i < 2000; ++i) {
                if (!a.try_enter()) continue;
                int now = ++inside;
                int seen = most.load();
                while (now > seen && !most.compare_exchange_weak(seen, now)) {}
                --inside;
                a.leave();
            }
        });
    for (auto& t : ts) t.join();
    EXPECT_LE(most.load(), 3);
    EXPECT_EQ(a.in_flight(), 0u);
}

} // namespace
} // namespace trestle
