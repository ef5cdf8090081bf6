#include "bridge/runtime/scheduling.hpp"

#include <gtest/gtest.h>

#include <pthread.h>
#include <sched.h>

#include <thread>

namespace {

int policy_after(int start) {
    int seen = -1;
    std::thread t([&] {
        sched_param sp{};
        if (start != SCHED_OTHER && pthread_setschedparam(pthread_self(), start, &sp) != 0) return;
        trestle::runtime::set_batch_scheduling();
        sched_param now{};
        pthread_getschedparam(pthread_self(), &seen, &now);
    });
    t.join();
    return seen;
}

} // namespace

TEST(Scheduling, AnOrdinaryThreadGoesToBatch) {
    EXPECT_EQ(policy_after(SCHED_OTHER), SCHED_BATCH);
}

// A shadow_process child starts at SCHED_IDLE; its io and loop threads must
// not climb back to SCHED_BATCH, which would compete with the primary.
TEST(Scheduling, AnIdleThreadStaysIdle) {
    EXPECT_EQ(policy_after(SCHED_IDLE), SCHED_IDLE);
}

// The shadow's replay and judge threads: idle, and then batch leaves them so.
TEST(Scheduling, SetIdleSchedulingLowersTheCallingThreadOnly) {
    int seen = -1, after_batch = -1, caller = -1;
    std::thread t([&] {
        ASSERT_TRUE(trestle::runtime::set_idle_scheduling());
        sched_param now{};
        pthread_getschedparam(pthread_self(), &seen, &now);
        trestle::runtime::set_batch_scheduling();
        pthread_getschedparam(pthread_self(), &after_batch, &now);
    });
    t.join();
    sched_param now{};
    pthread_getschedparam(pthread_self(), &caller, &now);
    EXPECT_EQ(seen, SCHED_IDLE);
    EXPECT_EQ(after_batch, SCHED_IDLE);
    EXPECT_NE(caller, SCHED_IDLE);
}
