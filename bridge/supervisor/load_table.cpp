#include "bridge/supervisor/load_table.hpp"

#include <sys/mman.h>

namespace trestle::supervisor {
namespace {
load_table* worker_table = nullptr;
int worker_slot = -1;
}

bool load_table::create() {
    std::size_t bytes = (max_slots + 1) * sizeof(std::atomic<std::int32_t>);
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return false;
    auto* a = static_cast<std::atomic<std::int32_t>*>(p);
    high_shared_ = a;
    high_shared_->store(0);
    slots_ = a + 1;
    for (std::size_t i = 0; i < max_slots; ++i) slots_[i].store(-1);
    return true;
}

int load_table::take_slot() {
    if (!slots_) return -1;
    for (std::size_t i = 0; i < max_slots; ++i) {
        if (used_[i]) continue;
        used_[i] = true;
        slots_[i].store(-1);
        if (i + 1 > high_) {
            high_ = i + 1;
            high_shared_->store(static_cast<std::int32_t>(high_));
        }
        return static_cast<int>(i);
    }
    return -1;
}

void load_table::free_slot(int slot) {
    if (!slots_ || slot < 0) return;
    used_[slot] = false;
    slots_[slot].store(-1);
}

std::int32_t load_table::least_other(int slot) const {
    if (!slots_) return -1;
    std::int32_t least = -1;
    std::int32_t high = high_shared_->load(std::memory_order_relaxed);
    for (std::int32_t i = 0; i < high; ++i) {
        if (i == slot) continue;
        std::int32_t v = slots_[i].load(std::memory_order_relaxed);
        if (v >= 0 && (least < 0 || v < least)) least = v;
    }
    return least;
}

void set_worker_load(load_table* table, int slot) {
    worker_table = table;
    worker_slot = slot;
}
load_table* worker_load_table() { return worker_table; }
int worker_load_slot() { return worker_slot; }

} // namespace trestle::supervisor
