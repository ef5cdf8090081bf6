#pragma once
// --timeout on the pool threads' side (WSGI requests). The connection
// notices the deadline in its periodic scan and answers the client (504, or
// a close); the exchange then tells this watchdog, which:
//  - logs where the thread running the request is (its Python stack, and
//    the coroutine it waits for if it is a Flask async view), and raises
//    trestle.RequestTimeout inside it (PyThreadState_SetAsyncExc), which
//    lands when that thread next runs Python bytecode;
//  - declares the thread stuck when it has not come back --timeout-grace
//    later: it is in C code that the exception cannot reach, and only a new
//    worker process gets the thread back (supervisor::tell).
// Two threads of its own, started only with --timeout: one takes the GIL to
// read stacks and raise; the other never touches Python, so that a GIL held
// for good by C code cannot keep a stuck thread from being reported.
#include "bridge/net/app_port.hpp"
#include "bridge/python/ref.hpp"
#include "bridge/runtime/overdue_ledger.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <thread>

namespace trestle::runtime {

struct thread_slot;   // a pool thread as the watchdog knows it (request_watchdog.cpp)

class request_watchdog final : public net::timeout_listener {
public:
    // Requires the GIL (imports trestle.RequestTimeout). Starts its threads.
    request_watchdog(std::chrono::milliseconds timeout, std::chrono::milliseconds grace);
    // After stop(), with the GIL held (it drops Python references).
    ~request_watchdog();

    // One WSGI request on a pool thread: from before the app is called to
    // the end of the request's last Python call. GIL held. With a null
    // watchdog (--timeout 0) it does nothing.
    class request {
    public:
        request(request_watchdog* w, net::app_port& ex);
        ~request();
        request(const request&) = delete;
        request& operator=(const request&) = delete;

    private:
        request_watchdog* w_;
        net::app_port& ex_;
        thread_slot* slot_ = nullptr;
    };

    // io thread, the exchange's lock held (net::timeout_listener).
    void request_timed_out(net::app_port& ex, bool answered, void* tag) override;

    // Threads reported stuck that have not come back: while there is one,
    // shutdown does not wait for the pool (it cannot finish).
    std::size_t stuck_count() const { return stuck_count_.load(std::memory_order_relaxed); }
    // Ends both threads; call without the GIL. False if the Python one is
    // still waiting for the GIL after `wait` (C code holds it): then exit
    // without finalizing Python, and without destroying this object.
    bool stop(std::chrono::milliseconds wait);

private:
    struct raise_job {
        std::shared_ptr<net::app_port> ex;
        thread_slot* slot;
        bool answered;
    };

    thread_slot* this_thread_slot();
    void came_back(net::app_port& ex);   // pool thread, GIL held
    void absorb_pending();               // pool thread, GIL held
    void raise_loop();                   // the Python thread
    void raise_in(const raise_job& job);
    void stuck_loop();                   // the bookkeeping thread
    void report_stuck(const overdue_ledger::entry& e);

    const std::chrono::milliseconds timeout_, grace_;
    py::ref exc_type_;                   // trestle.RequestTimeout
    py::ref report_fn_;                  // trestle._runtime.timeout_report
    py::ref absorb_fn_;                  // trestle._runtime.absorb_pending

    mutable std::mutex m_;
    std::condition_variable raise_cv_, stuck_cv_, done_cv_;
    std::list<thread_slot> slots_;       // one per pool thread, for the process
    std::deque<raise_job> jobs_;
    overdue_ledger ledger_;
    bool stopping_ = false;
    bool raise_done_ = false;
    std::atomic<std::size_t> stuck_count_{0};
    std::thread raiser_, bookkeeper_;
};

} // namespace trestle::runtime
