#pragma once
// A pool of Python threads. Each thread creates its PyThreadState once and
// keeps it for life. A thread takes the GIL when it finds work and keeps it
// while the queue stays non-empty, so a burst of requests costs one GIL
// acquisition, not one per request. CPython's own switch interval still lets
// other threads in.
//
// A thread that holds the GIL needs help only when its job stops running
// Python: it blocks (and releases the GIL) or runs long. A helper that
// simply waits for the GIL gets it by CPython's forced switch after a switch
// interval (5 ms), in the middle of the holder's request, which then waits
// for the helper's turn while later requests overtake it; with 8 threads all
// waiting, for several turns (measured: 0.25-0.4% of Flask hello requests
// waited 20-35 ms, docs/benchmarks.md). So with `help_after` set, a helper
// first stands by, without the GIL, and goes for it only once no job has
// started for that long.
//
// Two are made: the WSGI pool (a fixed --threads, min == max) and the loop's
// executor, the "blocking threads" (0 up to --blocking-threads, grown when a
// job finds no idle thread and shrunk after idle_timeout). Keeping them apart
// is what lets an executor job run while every WSGI thread is parked waiting
// for a coroutine (docs/architecture.md, "Flask async views").
#include "bridge/runtime/task.hpp"

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <list>
#include <mutex>
#include <string>
#include <thread>

namespace trestle::py { class thread_state; }

namespace trestle::runtime {

class thread_pool {
public:
    using job = task;   // runs with the GIL held; may own Python references

    struct settings {
        std::size_t min_threads = 1;     // started at once, never retired
        std::size_t max_threads = 1;     // grown to on demand
        std::size_t max_queue = 1024;
        std::chrono::milliseconds idle_timeout{30'000};   // a thread above min idle this long exits
        std::string name = "trestle-pool";                // thread names: NAME0, NAME1, ...
        // Zero: a thread called to help while another runs jobs takes the
        // GIL at once. Otherwise it stands by until no job has started for
        // this long (see stand_by()). The WSGI pool stands by; the loop's
        // executor, whose jobs block by nature, does not.
        std::chrono::microseconds help_after{0};
        // While metrics are on: time how long jobs wait in the queue and how
        // long the threads wait for the GIL (the WSGI pool).
        bool measured = false;
    };

    // What the metrics show of the pool, read under its lock.
    struct snapshot {
        std::size_t threads = 0;      // alive
        std::size_t busy = 0;         // running jobs (a batch each)
        std::size_t queued = 0;
        std::size_t queue_high_water = 0;
    };

    thread_pool(std::size_t threads, std::size_t max_queue, bool measured = false);   // fixed size
    explicit thread_pool(settings s);
    ~thread_pool();

    // Never blocks. Returns false when the queue is full. With wake false
    // no thread is woken yet: the caller promises a wake() soon, so that a
    // burst of submissions costs one wakeup.
    bool try_submit(job j, bool wake = true);
    void wake();
    // Stops taking work, lets queued jobs finish and joins the threads.
    // Returns false (without joining) if they are still busy after `wait_ms`.
    bool stop(long wait_ms);
    // Threads alive now (started and not retired).
    std::size_t size() const;
    snapshot stats() const;

private:
    struct slot {
        std::thread thread;
        bool exited = false;   // its Python thread state is gone; join it
    };

    void worker(std::list<slot>::iterator self);
    void work(const py::thread_state& python);   // until the thread retires or the pool stops
    // Called with m_ held when queued work may find no thread: wakes an idle
    // one, or starts one if the pool may grow.
    void call_help_locked();
    // Called with m_ held by a thread about to run jobs: waits while it is
    // not needed (help_after). False: the queue emptied, go idle.
    bool stand_by(std::unique_lock<std::mutex>& lock);
    bool spawn_locked();
    void reap_locked();

    settings s_;
    mutable std::mutex m_;
    std::condition_variable cv_;
    std::condition_variable idle_cv_;
    struct queued {
        job j;
        std::chrono::steady_clock::time_point at{};   // set when measured
    };
    std::deque<queued> queue_;
    std::size_t queue_high_water_ = 0;
    std::size_t alive_ = 0;      // threads started and not retired
    std::size_t starting_ = 0;   // started, not yet looking for work
    std::size_t idle_ = 0;
    std::size_t waking_ = 0;
    std::size_t running_ = 0;
    std::size_t standby_ = 0;           // threads called to help, waiting to see whether they are needed
    std::uint64_t jobs_started_ = 0;    // jobs taken off the queue, ever: progress, as a standby sees it
    std::condition_variable standby_cv_;
    std::size_t next_id_ = 0;
    bool stopping_ = false;
    std::list<slot> threads_;
};

} // namespace trestle::runtime
