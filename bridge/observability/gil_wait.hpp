#pragma once
// The GIL wait of pool threads (trestle_pool_gil_wait_seconds_total): set on
// a pool thread while metrics are on, every time it takes the GIL back at
// Trestle's own hand-offs (py::gil_release, py::gil_restore) is timed and
// added to that thread's metric cells. Off, the cost is one test of a
// thread-local flag.
#include <chrono>

namespace trestle::metrics {

extern thread_local bool t_time_gil;
void add_gil_wait(std::chrono::steady_clock::duration d);

// Takes the GIL by `acquire` (PyEval_RestoreThread), timed when asked.
template <class Acquire>
inline void timed_gil(Acquire acquire) {
    if (!t_time_gil) return acquire();
    auto t0 = std::chrono::steady_clock::now();
    acquire();
    add_gil_wait(std::chrono::steady_clock::now() - t0);
}

} // namespace trestle::metrics
