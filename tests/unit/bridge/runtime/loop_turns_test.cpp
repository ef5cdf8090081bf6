#include "bridge/runtime/loop_turns.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <chrono>
#include <thread>

using trestle::runtime::meter_turns;
using trestle::runtime::turn_meter;

namespace {

struct epoll_fd {
    int fd = ::epoll_create1(EPOLL_CLOEXEC);
    ~epoll_fd() { ::close(fd); }
};

} // namespace

// The waits this binary defines mark the turns of a metered thread: the
// time between a return from one wait and the next call is a turn.
TEST(LoopTurns, WaitsMarkTheTurnsOfAMeteredThread) {
    epoll_fd ep;
    ASSERT_GE(ep.fd, 0);
    turn_meter m;
    epoll_event ev{};
    meter_turns(&m);
    EXPECT_EQ(::epoll_wait(ep.fd, &ev, 1, 0), 0);   // no turn before the first wait
    EXPECT_EQ(m.turns(), 0u);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));   // a turn of 20 ms
    EXPECT_EQ(::epoll_pwait(ep.fd, &ev, 1, 0, nullptr), 0);
    EXPECT_EQ(::epoll_wait(ep.fd, &ev, 1, 0), 0);                 // a short one
    meter_turns(nullptr);
    EXPECT_EQ(::epoll_wait(ep.fd, &ev, 1, 0), 0);                 // not metered
    EXPECT_EQ(m.turns(), 2u);
    EXPECT_GE(m.seconds(), 0.02);
    EXPECT_LT(m.seconds(), 5.0);
    EXPECT_EQ(m.longer_than(0), 1u);   // over 1 ms
    EXPECT_EQ(m.longer_than(1), 1u);   // over 10 ms
    EXPECT_EQ(m.longer_than(2), 0u);   // not over 100 ms
}

TEST(LoopTurns, AnUnmeteredThreadWaitsAsUsual) {
    epoll_fd ep;
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    epoll_event in{};
    in.events = EPOLLIN;
    ASSERT_EQ(::epoll_ctl(ep.fd, EPOLL_CTL_ADD, p[0], &in), 0);
    ASSERT_EQ(::write(p[1], "x", 1), 1);
    epoll_event ev{};
    EXPECT_EQ(::epoll_wait(ep.fd, &ev, 1, 1000), 1);
    EXPECT_TRUE(ev.events & EPOLLIN);
    ::close(p[0]);
    ::close(p[1]);
}
