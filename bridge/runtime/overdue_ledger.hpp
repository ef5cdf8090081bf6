#pragma once
// The requests that ran past --timeout and whose threads have not come back
// yet, each with the moment its thread counts as stuck (--timeout-grace
// after the timeout). Bookkeeping only: no clock, no lock, no thread, so the
// rules can be tested alone; request_watchdog holds it under its mutex.
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace trestle::runtime {

class overdue_ledger {
public:
    using time_point = std::chrono::steady_clock::time_point;

    struct entry {
        const void* key;          // the request (its exchange), unique while the entry exists
        std::string what;         // "GET /path", for the log
        time_point timed_out_at;
        time_point stuck_at;
        bool stuck = false;       // reported stuck (by newly_stuck)
    };

    void add(const void* key, std::string what, time_point timed_out_at, time_point stuck_at);
    // The request's thread came back: its entry, removed, if it had one.
    std::optional<entry> came_back(const void* key);
    // Entries whose stuck_at has come and that were not reported yet: marked
    // stuck (they stay until their thread comes back) and returned, oldest first.
    std::vector<entry> newly_stuck(time_point now);
    // When newly_stuck() next has something to return, if ever.
    std::optional<time_point> next_due() const;
    std::size_t stuck() const;     // reported stuck and not come back
    std::size_t overdue() const { return entries_.size(); }

private:
    std::vector<entry> entries_;   // a handful at most: one per pool thread
};

} // namespace trestle::runtime
