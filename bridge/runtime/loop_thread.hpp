#pragma once
// The worker's asyncio event loop, on a thread of its own. Other threads
// hand it work without the GIL: post() queues a C++ function and, for the
// first one of a batch, writes to an eventfd the loop watches, so one wakeup
// drains many requests. The loop's default executor is a thread pool of its
// own (the blocking threads), apart from the one that runs WSGI apps: a
// WSGI thread parked waiting for a coroutine must never stand between that
// coroutine and the executor job it waits for.
#include "bridge/python/ref.hpp"

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace trestle::runtime {

class thread_pool;

class loop_thread {
public:
    // kind: "auto" (uvloop when it imports), "asyncio" or "uvloop".
    // executor: the blocking threads that run the loop's executor jobs.
    // startup_timeout bounds the trestle.flask startup hooks.
    loop_thread(std::string kind, thread_pool& executor, std::chrono::milliseconds startup_timeout);
    ~loop_thread();

    // Starts the thread and waits until the loop runs. Call without the GIL.
    // Returns false (with the reason logged) if the loop could not start.
    bool start();
    // Runs `fn` on the loop thread, with the GIL held, soon. Any thread, no GIL.
    void post(std::function<void()> fn);
    // Stops the loop and joins. The shutdown hooks and the cancelled tasks
    // get `budget` together; false if the thread has not ended a second
    // after that (a callback that never returns): then the caller must exit
    // without finalizing Python, and without destroying this object.
    // Call without the GIL.
    bool stop(std::chrono::milliseconds budget);

    PyObject* loop() const { return loop_.get(); }   // borrowed; valid while running
    const std::string& kind() const { return chosen_; }
    thread_pool& executor() { return executor_; }

    // Called by the eventfd reader on the loop thread.
    void drain();

private:
    void run();
    bool serve();   // GIL held; false if the loop could not start

    std::string kind_;
    std::string chosen_;
    thread_pool& executor_;
    std::chrono::milliseconds startup_timeout_;
    std::chrono::milliseconds close_budget_{-1};   // set by stop(); negative: unbounded
    py::ref loop_;
    int efd_ = -1;
    std::thread thread_;

    std::mutex m_;
    std::condition_variable started_cv_;
    int state_ = 0;   // 0 starting, 1 running, -1 failed
    bool finished_ = false;   // run() has returned from Python for good
    std::vector<std::function<void()>> queue_;
    // The batch being run; swapped with queue_ so both keep their capacity
    // (no reallocation as a burst of posts grows the queue again).
    std::vector<std::function<void()>> running_;
    bool signaled_ = false;
};

} // namespace trestle::runtime
