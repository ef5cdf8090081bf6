// The workers' shared connection counts: slots handed out and taken back,
// the least loaded of the others (ignoring workers not serving yet and
// draining ones), and counts that a forked child writes and the parent sees.
#include "bridge/supervisor/load_table.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

namespace trestle::supervisor {
namespace {

TEST(load_table, slots_and_the_least_loaded_other) {
    load_table t;
    ASSERT_TRUE(t.create());
    int a = t.take_slot(), b = t.take_slot(), c = t.take_slot();
    EXPECT_EQ(a, 0);
    EXPECT_EQ(b, 1);
    EXPECT_EQ(c, 2);
    // Not serving yet: no other to compare with.
    EXPECT_EQ(t.least_other(a), -1);
    t.counter(a)->store(10);
    t.counter(b)->store(3);
    EXPECT_EQ(t.least_other(a), 3);
    EXPECT_EQ(t.least_other(b), 10);
    t.counter(c)->store(0);
    EXPECT_EQ(t.least_other(a), 0);
    // A draining worker is never the least loaded.
    t.counter(c)->fetch_add(load_table::draining_mark);
    EXPECT_EQ(t.least_other(a), 3);
    // A freed slot is not counted, and is handed out again.
    t.free_slot(b);
    EXPECT_EQ(t.least_other(a), load_table::draining_mark);
    EXPECT_EQ(t.take_slot(), b);
    EXPECT_EQ(t.least_other(a), load_table::draining_mark);
}

TEST(load_table, a_childs_counts_reach_the_parent) {
    load_table t;
    ASSERT_TRUE(t.create());
    int mine = t.take_slot(), child = t.take_slot();
    t.counter(mine)->store(0);
    pid_t pid = ::fork();
    if (pid == 0) {
        t.counter(child)->store(0);
        for (int i = 0; i < 7; ++i) t.counter(child)->fetch_add(1);
        ::_exit(0);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    EXPECT_EQ(t.least_other(mine), 7);
}

TEST(load_table, without_the_mapping_nothing_is_compared) {
    load_table t;   // create() not called
    EXPECT_FALSE(t.valid());
    EXPECT_EQ(t.take_slot(), -1);
    EXPECT_EQ(t.counter(0), nullptr);
    EXPECT_EQ(t.least_other(0), -1);
}

} // namespace
} // namespace trestle::supervisor
