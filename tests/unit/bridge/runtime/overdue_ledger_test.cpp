// The rules for timed-out requests whose threads have not come back: when
// one counts as stuck, that it is reported once, and that a thread that
// comes back late (stuck or not) leaves the ledger. No real clock.
#include "bridge/runtime/overdue_ledger.hpp"

#include <gtest/gtest.h>

namespace trestle::runtime {
namespace {

using std::chrono::seconds;
using time_point = overdue_ledger::time_point;

const time_point t0{seconds(1000)};
int a, b, c;   // keys: any distinct addresses

TEST(overdue_ledger, nothing_is_due_when_empty) {
    overdue_ledger l;
    EXPECT_FALSE(l.next_due());
    EXPECT_TRUE(l.newly_stuck(t0).empty());
    EXPECT_EQ(l.stuck(), 0u);
    EXPECT_EQ(l.overdue(), 0u);
    EXPECT_FALSE(l.came_back(&a));
}

TEST(overdue_ledger, a_thread_back_within_the_grace_is_never_stuck) {
    overdue_ledger l;
    l.add(&a, "GET /a", t0, t0 + seconds(10));
    EXPECT_EQ(l.next_due(), t0 + seconds(10));
    EXPECT_TRUE(l.newly_stuck(t0 + seconds(9)).empty());
    auto e = l.came_back(&a);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->what, "GET /a");
    EXPECT_FALSE(e->stuck);
    EXPECT_EQ(e->timed_out_at, t0);
    EXPECT_TRUE(l.newly_stuck(t0 + seconds(60)).empty());
    EXPECT_FALSE(l.next_due());
    EXPECT_EQ(l.overdue(), 0u);
}

TEST(overdue_ledger, stuck_at_the_grace_deadline_reported_once_and_kept) {
    overdue_ledger l;
    l.add(&a, "GET /a", t0, t0 + seconds(10));
    auto due = l.newly_stuck(t0 + seconds(10));   // the deadline itself counts
    ASSERT_EQ(due.size(), 1u);
    EXPECT_EQ(due[0].what, "GET /a");
    EXPECT_TRUE(due[0].stuck);
    EXPECT_EQ(l.stuck(), 1u);
    EXPECT_FALSE(l.next_due());                   // nothing left to report
    EXPECT_TRUE(l.newly_stuck(t0 + seconds(100)).empty());
    EXPECT_EQ(l.overdue(), 1u);
    // A stuck thread may come back after all (its C call returned).
    auto e = l.came_back(&a);
    ASSERT_TRUE(e);
    EXPECT_TRUE(e->stuck);
    EXPECT_EQ(l.stuck(), 0u);
    EXPECT_EQ(l.overdue(), 0u);
}

TEST(overdue_ledger, several_requests_in_deadline_order) {
    overdue_ledger l;
    l.add(&a, "GET /a", t0, t0 + seconds(30));
    l.add(&b, "GET /b", t0 + seconds(1), t0 + seconds(11));
    l.add(&c, "GET /c", t0 + seconds(2), t0 + seconds(12));
    EXPECT_EQ(l.next_due(), t0 + seconds(11));
    ASSERT_TRUE(l.came_back(&c));
    auto due = l.newly_stuck(t0 + seconds(31));
    ASSERT_EQ(due.size(), 2u);
    EXPECT_EQ(due[0].what, "GET /b");   // oldest deadline first
    EXPECT_EQ(due[1].what, "GET /a");
    EXPECT_EQ(l.stuck(), 2u);
    EXPECT_FALSE(l.came_back(&c));      // only once
}

TEST(overdue_ledger, next_due_skips_what_was_reported) {
    overdue_ledger l;
    l.add(&a, "GET /a", t0, t0 + seconds(5));
    l.add(&b, "GET /b", t0, t0 + seconds(8));
    ASSERT_EQ(l.newly_stuck(t0 + seconds(6)).size(), 1u);
    EXPECT_EQ(l.next_due(), t0 + seconds(8));
}

} // namespace
} // namespace trestle::runtime
