#pragma once
// Which upstream of a mount gets the next request: round-robin, skipping an
// upstream that failed max_fails times in a row until fail_timeout has
// passed (passive ejection, as nginx's max_fails/fail_timeout). If every
// upstream is ejected, one is tried anyway. Shared by the io threads. The
// time is passed in, so the units need no clock.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <vector>

namespace trestle::proxy {

class balancer {
public:
    using clock = std::chrono::steady_clock;

    // max_fails 0: never eject.
    balancer(std::size_t upstreams, unsigned max_fails, clock::duration fail_timeout);

    // The next upstream not yet `tried` for this request, preferring one
    // that is not ejected; unset when all have been tried.
    std::optional<std::size_t> pick(clock::time_point now, const std::vector<bool>& tried);
    void failed(std::size_t i, clock::time_point now);
    void succeeded(std::size_t i);
    bool ejected(std::size_t i, clock::time_point now) const;
    // Failures of upstream `i` so far (connect errors, resets, timeouts).
    std::uint64_t failures(std::size_t i) const;
    std::size_t size() const { return peers_.size(); }

private:
    struct peer {
        unsigned fails = 0;                 // in a row
        std::uint64_t failures = 0;         // in all
        clock::time_point ejected_until{};
    };
    mutable std::mutex m_;
    std::vector<peer> peers_;
    std::size_t next_ = 0;
    unsigned max_fails_;
    clock::duration fail_timeout_;
};

} // namespace trestle::proxy
