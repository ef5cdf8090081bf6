#pragma once
// The pool of Python threads. Each thread creates its PyThreadState once and
// keeps it for life. A thread takes the GIL when it finds work and keeps it
// while the queue stays non-empty, so a burst of requests costs one GIL
// acquisition, not one per request. CPython's own switch interval still lets
// other threads in.
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace trestle::runtime {

class thread_pool {
public:
    using job = std::function<void()>;   // runs with the GIL held

    thread_pool(std::size_t threads, std::size_t max_queue);
    ~thread_pool();

    // Never blocks. Returns false when the queue is full. With wake false
    // no thread is woken yet: the caller promises a wake() soon, so that a
    // burst of submissions costs one wakeup.
    bool try_submit(job j, bool wake = true);
    void wake();
    // Stops taking work, lets queued jobs finish and joins the threads.
    // Returns false (without joining) if they are still busy after `wait_ms`.
    bool stop(long wait_ms);
    std::size_t size() const { return threads_.size(); }

private:
    void worker();

    std::mutex m_;
    std::condition_variable cv_;
    std::condition_variable idle_cv_;
    std::deque<job> queue_;
    std::size_t max_queue_;
    std::size_t idle_ = 0;
    std::size_t waking_ = 0;
    std::size_t running_ = 0;
    bool stopping_ = false;
    std::vector<std::thread> threads_;
};

} // namespace trestle::runtime
