#pragma once
// Serializes the threads that produce one WSGI response. An app may call
// write() or start_response() from threads of its own while the pool thread
// iterates the body, and the response state (the writer's buffer, the
// exchange's output) is not safe to share. Every entry holds the gate for its
// whole length; a thread that finds it taken waits with the GIL released, so
// the holder, which may be waiting for the client without the GIL, can
// always take the GIL back and finish. Needs a thread that holds the GIL.
#include "bridge/python/ref.hpp"

#include <condition_variable>
#include <mutex>

namespace trestle::wsgi {

struct output_gate {
    std::mutex m;
    std::condition_variable cv;
    bool busy = false;
};

class gate_hold {
public:
    explicit gate_hold(output_gate& g) : g_(g) {
        {
            std::lock_guard lock(g.m);
            if (!g.busy) {
                g.busy = true;
                return;
            }
        }
        py::gil_release nogil;
        std::unique_lock lock(g.m);
        g.cv.wait(lock, [&] { return !g.busy; });
        g.busy = true;
    }
    ~gate_hold() {
        {
            std::lock_guard lock(g_.m);
            g_.busy = false;
        }
        g_.cv.notify_all();
    }
    gate_hold(const gate_hold&) = delete;
    gate_hold& operator=(const gate_hold&) = delete;

private:
    output_gate& g_;
};

} // namespace trestle::wsgi
