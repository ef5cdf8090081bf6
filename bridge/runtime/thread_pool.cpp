#include "bridge/runtime/thread_pool.hpp"

#include "bridge/python/ref.hpp"
#include "bridge/runtime/scheduling.hpp"

#include <chrono>
#include <string>

namespace trestle::runtime {

thread_pool::thread_pool(std::size_t threads, std::size_t max_queue) : max_queue_(max_queue) {
    threads_.reserve(threads);
    for (std::size_t i = 0; i < threads; ++i)
        threads_.emplace_back([this, i] {
            set_thread_name(("trestle-pool" + std::to_string(i)).c_str());
            worker();
        });
}

thread_pool::~thread_pool() { stop(-1); }

bool thread_pool::try_submit(job j, bool wake) {
    std::lock_guard lock(m_);
    if (stopping_ || queue_.size() >= max_queue_) return false;
    queue_.push_back(std::move(j));
    // Wake one sleeper unless one is already on its way; a thread that holds
    // the GIL will also drain the queue on its own.
    if (wake && idle_ > waking_) {
        ++waking_;
        cv_.notify_one();
    }
    return true;
}

void thread_pool::wake() {
    std::lock_guard lock(m_);
    if (!queue_.empty() && idle_ > waking_) {
        ++waking_;
        cv_.notify_one();
    }
}

void thread_pool::worker() {
    // Registers this thread with CPython once; the state lives until exit.
    PyGILState_STATE gstate = PyGILState_Ensure();
    PyThreadState* tstate = PyEval_SaveThread();

    std::unique_lock lock(m_);
    for (;;) {
        ++idle_;
        while (!stopping_ && queue_.empty()) {
            cv_.wait(lock);
            // Every wake gives back its "on its way" mark, also when another
            // thread took the job first: a mark kept by a thread that went
            // back to sleep would make wake() skip it for good.
            if (waking_ > 0) --waking_;
        }
        --idle_;
        if (queue_.empty() && stopping_) break;
        ++running_;
        lock.unlock();

        PyEval_RestoreThread(tstate);
        lock.lock();
        while (!queue_.empty()) {
            job j = std::move(queue_.front());
            queue_.pop_front();
            // If this job blocks in Python (sleep, I/O) the rest of the queue
            // must not wait for it: wake a helper while work remains. A helper
            // that finds the GIL busy costs little: CPython hands the GIL over
            // at most once per switch interval.
            if (!queue_.empty() && idle_ > waking_) {
                ++waking_;
                cv_.notify_one();
            }
            lock.unlock();
            j();
            j = nullptr;   // release captures while the GIL is held
            lock.lock();
        }
        lock.unlock();
        PyEval_SaveThread();
        lock.lock();
        --running_;
        idle_cv_.notify_all();
    }
    lock.unlock();
    PyEval_RestoreThread(tstate);
    PyGILState_Release(gstate);
    // PyGILState_Release on the outermost Ensure deletes the thread state and
    // releases the GIL.
}

bool thread_pool::stop(long wait_ms) {
    {
        std::unique_lock lock(m_);
        if (threads_.empty()) return true;
        stopping_ = true;
        cv_.notify_all();
        if (wait_ms >= 0) {
            bool done = idle_cv_.wait_for(lock, std::chrono::milliseconds(wait_ms),
                                          [&] { return running_ == 0 && queue_.empty(); });
            if (!done) return false;
        }
    }
    for (auto& t : threads_) t.join();
    threads_.clear();
    return true;
}

} // namespace trestle::runtime
