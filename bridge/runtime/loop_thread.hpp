#pragma once
// The worker's asyncio event loop, on a thread of its own. Other threads
// hand it work without the GIL: post() queues a C++ function and, for the
// first one of a batch, writes to an eventfd the loop watches, so one wakeup
// drains many requests. The loop's default executor is a thread pool of its
// own (the blocking threads), apart from the one that runs WSGI apps: a
// WSGI thread parked waiting for a coroutine must never stand between that
// coroutine and the executor job it waits for.
//
// A watchdog thread reports a loop that stops turning: the loop calls
// beat() from a timer every few dozen milliseconds, and when no beat comes
// for longer than block_warn the watchdog logs a warning with the loop
// thread's Python stack (taken with the GIL, which CPython hands over within
// its switch interval unless C code holds it) and counts the stall.
#include "bridge/runtime/loop_turns.hpp"
#include "bridge/python/ref.hpp"
#include "bridge/runtime/task.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace trestle::runtime {

class thread_pool;

struct loop_settings {
    std::string kind = "auto";   // "auto" (uvloop when it imports), "asyncio" or "uvloop"
    std::chrono::milliseconds startup_timeout{60'000};   // bounds the trestle.flask startup hooks
    std::chrono::milliseconds block_warn{500};           // watchdog threshold; 0: no watchdog
    bool measured = false;                               // metrics: the heartbeat runs even without a watchdog
    std::string label = "the event loop";                 // names the loop in the watchdog's log lines
    std::string thread_name = "trestle-loop";
};

class loop_thread {
public:
    // executor: the blocking threads that run the loop's executor jobs.
    // owner: for a loop of one Flask app's own (flask_loop = "own"), the
    // trestle.flask runner it serves; empty for the shared loop. Released
    // on the loop thread, with the GIL.
    loop_thread(loop_settings s, thread_pool& executor, py::ref owner = {});
    ~loop_thread();

    // Starts the thread and waits until the loop runs. Call without the GIL.
    // Returns false (with the reason logged) if the loop could not start.
    bool start();
    // Runs `fn` on the loop thread, with the GIL held, soon. Any thread, no GIL.
    void post(task fn);
    // Stops the loop and joins. The shutdown hooks and the cancelled tasks
    // get `budget` together; false if the thread has not ended a second
    // after that (a callback that never returns): then the caller must exit
    // without finalizing Python, and without destroying this object.
    // Call without the GIL.
    bool stop(std::chrono::milliseconds budget);

    py::borrowed loop() const { return loop_; }   // valid while running
    const std::string& kind() const { return chosen_; }
    thread_pool& executor() { return executor_; }
    // Stalls the watchdog has reported so far (for the metrics).
    std::uint64_t blocked_count() const { return blocked_count_.load(std::memory_order_relaxed); }
    // Seconds the loop runs late (the metrics): how late its last heartbeat
    // came, or, while it is overdue, how overdue it is now.
    double lag_seconds() const;
    // CPU time the loop's thread has used (its callbacks and tasks: Python,
    // mostly), read from any thread; 0 before it starts. Its rate is the
    // share of the time the loop is busy.
    double cpu_seconds() const;
    // The turns of the loop, as long as run_forever runs (loop_turns.hpp).
    const turn_meter& turns() const { return turns_; }
    // Tasks alive on the loop, as counted at a recent heartbeat (-1: none yet).
    std::int64_t tasks() const { return tasks_.load(std::memory_order_relaxed); }

    // Called by the eventfd reader on the loop thread.
    void drain();
    // Called by the loop's heartbeat timer, on the loop thread.
    void beat(std::int64_t tasks);   // tasks: -1 when not counted this time

private:
    void run();
    bool serve();   // GIL held; false if the loop could not start
    void watch();   // the watchdog thread
    void report_stall(std::int64_t gap_ns, std::uint64_t count);
    bool stop_watchdog(std::chrono::milliseconds wait);

    loop_settings s_;
    std::string chosen_;
    thread_pool& executor_;
    py::ref owner_;
    std::chrono::milliseconds beat_period_;
    unsigned long py_ident_ = 0;   // the loop thread's threading.get_ident()
    std::atomic<std::int64_t> last_beat_ns_{0};
    std::atomic<std::int64_t> last_lag_ns_{0};
    std::atomic<std::int64_t> tasks_{-1};
    std::atomic<std::uint64_t> blocked_count_{0};
    turn_meter turns_;
    std::thread watchdog_;
    std::mutex watch_m_;
    std::condition_variable watch_cv_;
    bool watch_stop_ = false;
    bool watch_done_ = false;
    std::chrono::milliseconds close_budget_{-1};   // set by stop(); negative: unbounded
    py::ref loop_;
    int efd_ = -1;
    std::thread thread_;

    std::mutex m_;
    std::condition_variable started_cv_;
    int state_ = 0;   // 0 starting, 1 running, -1 failed
    bool finished_ = false;   // run() has returned from Python for good
    std::vector<task> queue_;
    // The batch being run; swapped with queue_ so both keep their capacity
    // (no reallocation as a burst of posts grows the queue again).
    std::vector<task> running_;
    bool signaled_ = false;
};

} // namespace trestle::runtime
