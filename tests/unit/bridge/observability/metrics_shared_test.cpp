// The workers' shared metrics table: counters summed over the live slots
// and what exited workers left behind, so a worker's exit never lowers a
// sum; values per live slot; restarts by cause; a forked child's publish
// seen by its parent (the memory is shared, not copied).
#include "bridge/observability/metrics_shared.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

namespace trestle::metrics {
namespace {

TEST(metrics_shared, sums_survive_a_worker_leaving) {
    shared_table t;
    ASSERT_TRUE(t.create(3));
    t.publish(0, {1, 2, 3}, {0.5});
    t.publish(2, {10, 20, 30}, {1.5, 7});
    EXPECT_EQ(t.sum(), (std::vector<std::uint64_t>{11, 22, 33}));
    auto v = t.values();
    ASSERT_EQ(v.size(), 2u);
    EXPECT_EQ(v[0].first, 0);
    EXPECT_EQ(v[0].second, (std::vector<double>{0.5}));
    EXPECT_EQ(v[1].first, 2);
    EXPECT_EQ(v[1].second, (std::vector<double>{1.5, 7}));
    t.retire(2);
    EXPECT_EQ(t.sum(), (std::vector<std::uint64_t>{11, 22, 33}));   // folded, not lost
    EXPECT_EQ(t.values().size(), 1u);
    t.publish(2, {1, 1, 1}, {});   // a new worker in the same slot starts from zero
    EXPECT_EQ(t.sum(), (std::vector<std::uint64_t>{12, 23, 34}));
    t.count_restart(restart_cause::max_requests);
    t.count_restart(restart_cause::crash);
    t.count_restart(restart_cause::crash);
    auto r = t.restarts();
    EXPECT_EQ(r[static_cast<std::size_t>(restart_cause::crash)], 2u);
    EXPECT_EQ(r[static_cast<std::size_t>(restart_cause::max_requests)], 1u);
    EXPECT_EQ(cause_name(restart_cause::max_rss), "max_rss");
}

TEST(metrics_shared, a_forked_worker_publishes_into_the_same_memory) {
    shared_table t;
    ASSERT_TRUE(t.create(2));
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        t.publish(5, {40, 2}, {3.25});
        ::_exit(0);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_EQ(t.sum(), (std::vector<std::uint64_t>{40, 2}));
    ASSERT_EQ(t.values().size(), 1u);
    EXPECT_EQ(t.values()[0].second, (std::vector<double>{3.25}));
}

TEST(metrics_shared, slots_out_of_range_are_ignored) {
    shared_table t;
    ASSERT_TRUE(t.create(1));
    t.publish(-1, {5}, {});
    t.publish(static_cast<int>(shared_table::max_slots), {5}, {});
    t.retire(-1);
    EXPECT_EQ(t.sum(), (std::vector<std::uint64_t>{0}));
}

} // namespace
} // namespace trestle::metrics
