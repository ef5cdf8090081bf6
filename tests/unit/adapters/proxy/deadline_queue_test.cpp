// The proxy's deadline queue: entries expire in time order whatever order
// they came in, a cancelled or destroyed entry never expires, an entry can
// schedule itself again from expired(), and the one timer fires for the
// earliest deadline, also when a nearer one comes after a later one.
#include "adapters/proxy/deadline_queue.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <functional>
#include <memory>
#include <vector>

namespace trestle::proxy {
namespace {

using clock = deadline_queue::clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

struct probe : deadline_queue::entry {
    std::vector<int>* log;
    int name;
    std::function<void(probe&)> then;
    probe(std::vector<int>& l, int n) : log(&l), name(n) {}
    void expired() override {
        log->push_back(name);
        if (then) then(*this);
    }
};

struct deadline_queue_test : ::testing::Test {
    boost::asio::io_context io;
    deadline_queue& q = deadline_queue::of(io.get_executor());
    std::vector<int> log;
    const clock::time_point t0 = clock::now() + seconds(100);   // far enough that the timer stays quiet

    void at(probe& p, clock::time_point t) { q.schedule(p, t, io.get_executor()); }
};

TEST_F(deadline_queue_test, entries_expire_in_time_order_and_only_when_due) {
    probe a(log, 1), b(log, 2), c(log, 3), d(log, 4);
    at(a, t0 + seconds(3));
    at(b, t0 + seconds(1));   // before the tail
    at(c, t0 + seconds(3));   // equal to the tail: after it
    at(d, t0 + seconds(2));
    EXPECT_EQ(q.expire(t0), 0u);
    EXPECT_EQ(q.expire(t0 + seconds(2)), 2u);
    EXPECT_EQ(log, (std::vector<int>{2, 4}));
    EXPECT_FALSE(b.pending());
    EXPECT_TRUE(a.pending());
    EXPECT_EQ(q.expire(t0 + seconds(5)), 2u);
    EXPECT_EQ(log, (std::vector<int>{2, 4, 1, 3}));
    EXPECT_TRUE(q.empty());
}

TEST_F(deadline_queue_test, a_cancelled_or_destroyed_entry_never_expires) {
    probe a(log, 1), c(log, 3);
    at(a, t0 + seconds(1));
    {
        probe b(log, 2);
        at(b, t0 + seconds(2));
        at(c, t0 + seconds(3));
    }   // b unlinks itself
    a.cancel();
    EXPECT_FALSE(a.pending());
    EXPECT_EQ(q.expire(t0 + seconds(10)), 1u);
    EXPECT_EQ(log, (std::vector<int>{3}));
}

TEST_F(deadline_queue_test, scheduling_again_moves_the_entry) {
    probe a(log, 1), b(log, 2);
    at(a, t0 + seconds(1));
    at(b, t0 + seconds(2));
    at(a, t0 + seconds(3));   // later now
    EXPECT_EQ(q.expire(t0 + seconds(2)), 1u);
    EXPECT_EQ(log, (std::vector<int>{2}));
    EXPECT_EQ(a.at(), t0 + seconds(3));
}

TEST_F(deadline_queue_test, an_entry_may_schedule_itself_again_when_it_expires) {
    probe a(log, 1);
    int left = 2;
    a.then = [&](probe& p) {
        if (left-- > 0) at(p, p.at() + seconds(1));
    };
    at(a, t0);
    EXPECT_EQ(q.expire(t0 + seconds(10)), 3u);   // each new deadline is due too
    EXPECT_EQ(log, (std::vector<int>{1, 1, 1}));
}

TEST_F(deadline_queue_test, the_timer_fires_for_the_earliest_deadline) {
    probe late(log, 1), soon(log, 2);
    auto now = clock::now();
    at(late, now + seconds(30));
    EXPECT_EQ(q.timer_at(), now + seconds(30));
    at(soon, now + milliseconds(20));   // nearer than the armed wait: re-armed
    EXPECT_EQ(q.timer_at(), now + milliseconds(20));
    for (int i = 0; i < 200 && log.empty(); ++i) io.run_one_for(milliseconds(10));
    EXPECT_EQ(log, (std::vector<int>{2}));
    EXPECT_TRUE(late.pending());
    EXPECT_EQ(q.timer_at(), now + seconds(30));   // waits again, for the one left
}

TEST_F(deadline_queue_test, a_later_deadline_does_not_move_the_timer) {
    probe a(log, 1), b(log, 2);
    auto now = clock::now();
    at(a, now + seconds(5));
    at(b, now + seconds(10));
    EXPECT_EQ(q.timer_at(), now + seconds(5));
    a.cancel();   // lazily: the wait stays, and finds b when it fires
    EXPECT_EQ(q.timer_at(), now + seconds(5));
}

} // namespace
} // namespace trestle::proxy
