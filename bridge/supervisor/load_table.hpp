#pragma once
// How many connections each worker holds, in memory the supervisor maps
// shared before it forks. A worker that holds clearly more than the least
// loaded one lets a new connection wait a moment for another worker to take
// it (net::server's accept loop). Without it, the worker that happens to be
// awake takes a whole burst: 64 keep-alive connections opened at once by a
// load balancer or wrk went 64/0 to one of two workers, and stayed there.
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace trestle::supervisor {

class load_table {
public:
    static constexpr std::size_t max_slots = 1024;
    // In the supervisor, before any fork. False if the memory cannot be mapped
    // (then the workers accept as they would alone).
    bool create();
    bool valid() const { return slots_ != nullptr; }

    // Supervisor: a slot for a new worker (not counted until it serves), and
    // back when the worker is gone. -1 if none is free.
    int take_slot();
    void free_slot(int slot);

    // Worker: its slot's counter, which its connections count up and down
    // (-1 until it accepts; draining_mark once it drains, so it is never
    // the least loaded).
    std::atomic<std::int32_t>* counter(int slot) { return slots_ && slot >= 0 ? &slots_[slot] : nullptr; }
    static constexpr std::int32_t draining_mark = 1 << 30;
    // The smallest count among the other accepting workers; -1 if none.
    std::int32_t least_other(int slot) const;

private:
    std::atomic<std::int32_t>* slots_ = nullptr;   // max_slots, shared; -1 unused or not accepting
    bool used_[max_slots] = {};                    // the supervisor's own bookkeeping
    std::size_t high_ = 0;                         // slots ever handed out (the workers scan this far)
    std::atomic<std::int32_t>* high_shared_ = nullptr;
};

// The worker's view, set after the fork: the table and its slot.
void set_worker_load(load_table* table, int slot);
load_table* worker_load_table();
int worker_load_slot();

} // namespace trestle::supervisor
