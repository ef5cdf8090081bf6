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
