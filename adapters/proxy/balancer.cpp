#include "adapters/proxy/balancer.hpp"

namespace trestle::proxy {

balancer::balancer(std::size_t upstreams, unsigned max_fails, clock::duration fail_timeout)
    : peers_(upstreams), max_fails_(max_fails), fail_timeout_(fail_timeout) {}

std::optional<std::size_t> balancer::pick(clock::time_point now, const std::vector<bool>& tried) {
    std::lock_guard lock(m_);
    std::size_t n = peers_.size();
    std::optional<std::size_t> fallback;   // the first untried one, ejected or not
    for (std::size_t k = 0; k < n; ++k) {
        std::size_t i = (next_ + k) % n;
        if (i < tried.size() && tried[i]) continue;
        if (!fallback) fallback = i;
        if (now >= peers_[i].ejected_until) {
            next_ = (i + 1) % n;
            return i;
        }
    }
    if (fallback) next_ = (*fallback + 1) % n;
    return fallback;
}

void balancer::failed(std::size_t i, clock::time_point now) {
    std::lock_guard lock(m_);
    peer& p = peers_[i];
    ++p.failures;
    // Counted on after an ejection ends, so the first failure of a peer on
    // probation ejects it again.
    if (p.fails < max_fails_) ++p.fails;
    if (max_fails_ > 0 && p.fails >= max_fails_) p.ejected_until = now + fail_timeout_;
}

void balancer::succeeded(std::size_t i) {
    std::lock_guard lock(m_);
    peers_[i].fails = 0;
    peers_[i].ejected_until = {};
}

std::uint64_t balancer::failures(std::size_t i) const {
    std::lock_guard lock(m_);
    return peers_[i].failures;
}

bool balancer::ejected(std::size_t i, clock::time_point now) const {
    std::lock_guard lock(m_);
    return now < peers_[i].ejected_until;
}

} // namespace trestle::proxy
