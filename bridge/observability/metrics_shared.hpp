#pragma once
// The metrics of every worker process, in memory the supervisor maps shared
// before it forks, so that whichever worker answers a scrape answers for
// all of them: the counters summed over the workers (and over the workers
// that have exited, whose last counts the supervisor folds into the
// retired totals, so a restart never makes a counter go back), the values
// read at scrape time (pool, loop, connections) per worker, and the
// supervisor's restarts by cause.
//
// Each worker publishes its own totals into its slot (the load table's slot
// number) four times a second and just before it renders a scrape; the
// others' are at most that old. Only the worker writes its slot, and only
// the supervisor writes the retired totals and the restarts; a sequence
// count around each fold lets a reader see a slot either before or after it.
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

namespace trestle::metrics {

enum class restart_cause : std::size_t { crash, max_requests, max_rss, stuck, reload, count };
std::string_view cause_name(restart_cause c);

class shared_table {
public:
    static constexpr std::size_t max_slots = 1024;
    static constexpr std::size_t max_values = 128;

    // In the supervisor, before any fork: room for `counters` counters per
    // worker. False if the memory cannot be mapped (each worker then
    // answers for itself).
    bool create(std::size_t counters);
    bool valid() const { return base_ != nullptr; }
    std::size_t counters() const { return counters_; }

    // ---- a worker, in its own slot ----------------------------------------
    void publish(int slot, const std::vector<std::uint64_t>& counters, const std::vector<double>& values);

    // ---- the supervisor ---------------------------------------------------
    // The worker in `slot` is gone: its counters join the retired totals.
    void retire(int slot);
    // Counters that are levels (a count of open things, +1 and -1): a gone
    // worker's are dropped rather than folded in, so that a worker that was
    // killed with connections open leaves none behind.
    void set_levels(std::vector<std::size_t> indexes) { levels_ = std::move(indexes); }
    void count_restart(restart_cause c);

    // ---- readers ----------------------------------------------------------
    // The retired totals plus every live slot's counters.
    std::vector<std::uint64_t> sum() const;
    // Each live slot's values: (slot, values).
    std::vector<std::pair<int, std::vector<double>>> values() const;
    std::array<std::uint64_t, static_cast<std::size_t>(restart_cause::count)> restarts() const;

private:
    struct header;
    std::atomic<std::uint64_t>* slot_base(int slot) const;
    std::size_t slot_words() const { return 2 + counters_ + max_values; }

    void* base_ = nullptr;
    std::size_t counters_ = 0;
    std::vector<std::size_t> levels_;   // sorted
};

// The worker's view, set after the fork.
void set_worker_shared(shared_table* t, int slot);
shared_table* worker_shared();
int worker_shared_slot();

} // namespace trestle::metrics
