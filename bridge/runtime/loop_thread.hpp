#pragma once
// The worker's asyncio event loop, on a thread of its own. Other threads
// hand it work without the GIL: post() queues a C++ function and, for the
// first one of a batch, writes to an eventfd the loop watches, so one wakeup
// drains many requests. The loop's default executor is a thread pool of its
// own (the blocking threads), apart from the one that runs WSGI apps: a
// WSGI thread parked waiting for a coroutine must never stand between that
// coroutine and the executor job it waits for.
#include "bridge/python/ref.hpp"

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
    loop_thread(std::string kind, thread_pool& executor);
    ~loop_thread();

    // Starts the thread and waits until the loop runs. Call without the GIL.
    // Returns false (with the reason logged) if the loop could not start.
    bool start();
    // Runs `fn` on the loop thread, with the GIL held, soon. Any thread, no GIL.
    void post(std::function<void()> fn);
    // Stops the loop and joins. Call without the GIL.
    void stop();

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
    py::ref loop_;
    int efd_ = -1;
    std::thread thread_;

    std::mutex m_;
    std::condition_variable started_cv_;
    int state_ = 0;   // 0 starting, 1 running, -1 failed
    std::vector<std::function<void()>> queue_;
    // The batch being run; swapped with queue_ so both keep their capacity
    // (no reallocation as a burst of posts grows the queue again).
    std::vector<std::function<void()>> running_;
    bool signaled_ = false;
};

} // namespace trestle::runtime
