#include "bridge/observability/metrics_shared.hpp"

#include <algorithm>
#include <bit>
#include <sys/mman.h>

namespace trestle::metrics {

namespace {
shared_table* g_table = nullptr;
int g_slot = -1;
constexpr std::size_t causes = static_cast<std::size_t>(restart_cause::count);
} // namespace

std::string_view cause_name(restart_cause c) {
    switch (c) {
    case restart_cause::crash: return "crash";
    case restart_cause::max_requests: return "max_requests";
    case restart_cause::max_rss: return "max_rss";
    case restart_cause::stuck: return "stuck";
    case restart_cause::reload: return "reload";
    case restart_cause::count: break;
    }
    return "";
}

// Laid out at the start of the mapping; then the retired totals, then the
// slots (each: live, value count, counters, values).
struct shared_table::header {
    std::atomic<std::uint64_t> seq;    // odd while the supervisor folds a slot
    std::atomic<std::uint64_t> high;   // slots ever published: readers look no further
    std::atomic<std::uint64_t> restarts[causes];
};

bool shared_table::create(std::size_t counters) {
    counters_ = counters;
    std::size_t words = sizeof(header) / 8 + counters_ + max_slots * slot_words();
    void* p = ::mmap(nullptr, words * 8, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return false;
    base_ = p;   // zero-filled: no slot live, nothing retired
    return true;
}

std::atomic<std::uint64_t>* shared_table::slot_base(int slot) const {
    auto* words = static_cast<std::atomic<std::uint64_t>*>(base_);
    return words + sizeof(header) / 8 + counters_ + static_cast<std::size_t>(slot) * slot_words();
}

void shared_table::publish(int slot, const std::vector<std::uint64_t>& counters, const std::vector<double>& values) {
    if (!base_ || slot < 0 || static_cast<std::size_t>(slot) >= max_slots) return;
    auto* s = slot_base(slot);
    std::size_t n = std::min(counters.size(), counters_);
    for (std::size_t i = 0; i < n; ++i) s[2 + i].store(counters[i], std::memory_order_relaxed);
    std::size_t k = std::min(values.size(), max_values);
    for (std::size_t i = 0; i < k; ++i)
        s[2 + counters_ + i].store(std::bit_cast<std::uint64_t>(values[i]), std::memory_order_relaxed);
    s[1].store(k, std::memory_order_relaxed);
    s[0].store(1, std::memory_order_release);
    auto& high = static_cast<header*>(base_)->high;
    std::uint64_t want = static_cast<std::uint64_t>(slot) + 1;
    for (std::uint64_t cur = high.load(std::memory_order_relaxed); cur < want;)
        if (high.compare_exchange_weak(cur, want, std::memory_order_relaxed)) break;
}

void shared_table::retire(int slot) {
    if (!base_ || slot < 0 || static_cast<std::size_t>(slot) >= max_slots) return;
    auto* h = static_cast<header*>(base_);
    auto* retired = reinterpret_cast<std::atomic<std::uint64_t>*>(h + 1);
    auto* s = slot_base(slot);
    h->seq.fetch_add(1, std::memory_order_acq_rel);   // odd: readers retry
    if (s[0].load(std::memory_order_acquire)) {
        for (std::size_t i = 0; i < counters_; ++i) {
            if (!std::binary_search(levels_.begin(), levels_.end(), i))
                retired[i].fetch_add(s[2 + i].load(std::memory_order_relaxed), std::memory_order_relaxed);
            s[2 + i].store(0, std::memory_order_relaxed);
        }
        s[1].store(0, std::memory_order_relaxed);
        s[0].store(0, std::memory_order_release);
    }
    h->seq.fetch_add(1, std::memory_order_acq_rel);
}

void shared_table::count_restart(restart_cause c) {
    if (!base_) return;
    static_cast<header*>(base_)->restarts[static_cast<std::size_t>(c)].fetch_add(1, std::memory_order_relaxed);
}

std::vector<std::uint64_t> shared_table::sum() const {
    std::vector<std::uint64_t> out(counters_, 0);
    if (!base_) return out;
    auto* h = static_cast<header*>(base_);
    auto* retired = reinterpret_cast<std::atomic<std::uint64_t>*>(h + 1);
    // A fold is a few thousand stores: a reader that meets one retries (a
    // bounded number of times, then takes what it read).
    for (int attempt = 0; attempt < 1000; ++attempt) {
        std::uint64_t before = h->seq.load(std::memory_order_acquire);
        if (before & 1) continue;
        for (std::size_t i = 0; i < counters_; ++i) out[i] = retired[i].load(std::memory_order_relaxed);
        std::uint64_t high = h->high.load(std::memory_order_relaxed);
        for (std::size_t slot = 0; slot < high; ++slot) {
            auto* s = slot_base(static_cast<int>(slot));
            if (!s[0].load(std::memory_order_acquire)) continue;
            for (std::size_t i = 0; i < counters_; ++i) out[i] += s[2 + i].load(std::memory_order_relaxed);
        }
        if (h->seq.load(std::memory_order_acquire) == before) break;
    }
    return out;
}

std::vector<std::pair<int, std::vector<double>>> shared_table::values() const {
    std::vector<std::pair<int, std::vector<double>>> out;
    if (!base_) return out;
    std::uint64_t high = static_cast<header*>(base_)->high.load(std::memory_order_relaxed);
    for (std::size_t slot = 0; slot < high; ++slot) {
        auto* s = slot_base(static_cast<int>(slot));
        if (!s[0].load(std::memory_order_acquire)) continue;
        std::size_t k = s[1].load(std::memory_order_relaxed);
        std::vector<double> v(k);
        for (std::size_t i = 0; i < k; ++i)
            v[i] = std::bit_cast<double>(s[2 + counters_ + i].load(std::memory_order_relaxed));
        out.emplace_back(static_cast<int>(slot), std::move(v));
    }
    return out;
}

std::array<std::uint64_t, causes> shared_table::restarts() const {
    std::array<std::uint64_t, causes> out{};
    if (!base_) return out;
    auto* h = static_cast<header*>(base_);
    for (std::size_t i = 0; i < causes; ++i) out[i] = h->restarts[i].load(std::memory_order_relaxed);
    return out;
}

void set_worker_shared(shared_table* t, int slot) {
    g_table = t;
    g_slot = slot;
}
shared_table* worker_shared() { return g_table; }
int worker_shared_slot() { return g_slot; }

} // namespace trestle::metrics
