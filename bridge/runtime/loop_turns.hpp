#pragma once
// How long each turn of an event loop runs: the time between the loop's
// return from waiting for events and its next wait, which is the time its
// callbacks and tasks ran (Python, mostly). Neither asyncio nor uvloop has
// a hook per turn, but both wait in epoll_wait or epoll_pwait (uvloop
// through libuv), so this program defines those two functions (loop_turns.cpp):
// each calls the C library's, and on a thread that has a meter (the loop
// thread) marks the turn's end before the wait and its start after it. On
// any other thread (the io threads, Python's own selectors) the cost is one
// thread-local load.
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>

namespace trestle::runtime {

class turn_meter {
public:
    // Turns that ran longer than these (seconds) are counted apart.
    static constexpr std::array<double, 3> long_turn{0.001, 0.01, 0.1};

    // ---- the metered thread ---------------------------------------------------
    void waiting();   // about to wait for events: the turn (if one ran) ends
    void woke();      // back from the wait: a turn starts

    // ---- any thread ------------------------------------------------------------
    std::uint64_t turns() const { return turns_.load(std::memory_order_relaxed); }
    double seconds() const { return static_cast<double>(ns_.load(std::memory_order_relaxed)) / 1e9; }
    std::uint64_t longer_than(std::size_t i) const { return long_[i].load(std::memory_order_relaxed); }

private:
    std::chrono::steady_clock::time_point started_{};   // the metered thread only
    bool in_turn_ = false;
    std::atomic<std::uint64_t> turns_{0}, ns_{0};
    std::array<std::atomic<std::uint64_t>, long_turn.size()> long_{};
};

// The calling thread's waits mark the turns of `m` from now on (nullptr:
// no longer).
void meter_turns(turn_meter* m);

} // namespace trestle::runtime
