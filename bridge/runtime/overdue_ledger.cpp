#include "bridge/runtime/overdue_ledger.hpp"

#include <algorithm>

namespace trestle::runtime {

void overdue_ledger::add(const void* key, std::string what, time_point timed_out_at, time_point stuck_at) {
    entries_.push_back({key, std::move(what), timed_out_at, stuck_at, false});
}

std::optional<overdue_ledger::entry> overdue_ledger::came_back(const void* key) {
    auto it = std::find_if(entries_.begin(), entries_.end(), [&](const entry& e) { return e.key == key; });
    if (it == entries_.end()) return std::nullopt;
    entry e = std::move(*it);
    entries_.erase(it);
    return e;
}

std::vector<overdue_ledger::entry> overdue_ledger::newly_stuck(time_point now) {
    std::vector<entry> out;
    for (auto& e : entries_) {
        if (e.stuck || now < e.stuck_at) continue;
        e.stuck = true;
        out.push_back(e);
    }
    std::sort(out.begin(), out.end(), [](const entry& a, const entry& b) { return a.stuck_at < b.stuck_at; });
    return out;
}

std::optional<overdue_ledger::time_point> overdue_ledger::next_due() const {
    std::optional<time_point> due;
    for (const auto& e : entries_)
        if (!e.stuck && (!due || e.stuck_at < *due)) due = e.stuck_at;
    return due;
}

std::size_t overdue_ledger::stuck() const {
    return static_cast<std::size_t>(std::count_if(entries_.begin(), entries_.end(), [](const entry& e) { return e.stuck; }));
}

} // namespace trestle::runtime
