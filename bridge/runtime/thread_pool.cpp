#include "bridge/runtime/thread_pool.hpp"

#include "bridge/observability/metrics.hpp"
#include "bridge/python/ref.hpp"
#include "bridge/runtime/scheduling.hpp"

#include <system_error>

namespace trestle::runtime {

namespace {
thread_pool::settings fixed(std::size_t threads, std::size_t max_queue, bool measured) {
    thread_pool::settings s;
    s.measured = measured;
    s.min_threads = s.max_threads = threads;
    s.max_queue = max_queue;
    s.help_after = std::chrono::microseconds(500);
    return s;
}

// With m_ held; the cells are this thread's own.
void note_queue_wait(std::chrono::steady_clock::time_point queued_at) {
    metrics::registry* r = metrics::current();
    if (!r) return;
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - queued_at).count();
    metrics::thread_cells& c = r->local();
    c.queue_wait_ns.add(ns > 0 ? static_cast<std::uint64_t>(ns) : 0);
    c.queue_waits.add(1);
}
} // namespace

thread_pool::thread_pool(std::size_t threads, std::size_t max_queue, bool measured)
    : thread_pool(fixed(threads, max_queue, measured)) {}

thread_pool::thread_pool(settings s) : s_(std::move(s)) {
    if (s_.max_threads < s_.min_threads) s_.max_threads = s_.min_threads;
    std::lock_guard lock(m_);
    for (std::size_t i = 0; i < s_.min_threads; ++i)
        if (!spawn_locked()) throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again),
                                                     "cannot start " + s_.name + " threads");
}

thread_pool::~thread_pool() { stop(-1); }

std::size_t thread_pool::size() const {
    std::lock_guard lock(m_);
    return alive_;
}

thread_pool::snapshot thread_pool::stats() const {
    std::lock_guard lock(m_);
    return {alive_, running_, queue_.size(), queue_high_water_};
}

bool thread_pool::try_submit(job j, bool wake) {
    std::lock_guard lock(m_);
    if (stopping_ || queue_.size() >= s_.max_queue) return false;
    queue_.push_back({std::move(j), s_.measured && metrics::current() ? std::chrono::steady_clock::now()
                                                                       : std::chrono::steady_clock::time_point{}});
    if (queue_.size() > queue_high_water_) queue_high_water_ = queue_.size();
    if (wake) call_help_locked();
    return true;
}

void thread_pool::wake() {
    std::lock_guard lock(m_);
    if (!queue_.empty()) call_help_locked();
}

void thread_pool::call_help_locked() {
    // One standing by is enough: it watches the queue for all, and is told
    // at once when no thread runs jobs any more.
    if (standby_ > 0) {
        if (running_ == 0) standby_cv_.notify_one();
        return;
    }
    // Wake one sleeper unless one is already on its way; a thread that holds
    // the GIL will also drain the queue on its own.
    if (idle_ > waking_) {
        ++waking_;
        cv_.notify_one();
        return;
    }
    // No one idle. A growable pool starts a thread for each job that no
    // woken or starting thread will take: a job must never wait for a busy
    // thread (it may be parked on the very work this job would do).
    if (!stopping_ && alive_ < s_.max_threads && queue_.size() > waking_ + starting_) spawn_locked();
}

bool thread_pool::spawn_locked() {
    reap_locked();
    auto it = threads_.emplace(threads_.end());
    std::size_t id = next_id_++;
    try {
        // The thread touches its slot only under m_, which is held here
        // until the slot holds the thread.
        it->thread = std::thread([this, it, id] {
            set_thread_name((s_.name + std::to_string(id)).c_str());
            worker(it);
        });
    } catch (const std::system_error&) {
        threads_.erase(it);   // out of threads: the queued job waits for a busy one
        return false;
    }
    ++alive_;
    ++starting_;
    return true;
}

void thread_pool::reap_locked() {
    // An exited thread has released its Python state and no longer needs
    // m_, so joining it here cannot wait on us.
    for (auto it = threads_.begin(); it != threads_.end();) {
        if (it->exited) {
            it->thread.join();
            it = threads_.erase(it);
        } else {
            ++it;
        }
    }
}

void thread_pool::worker(std::list<slot>::iterator self) {
    {
        // Registers this thread with CPython once; the state lives until exit.
        py::thread_state python;
        metrics::t_time_gil = s_.measured && metrics::current();
        work(python);
    }
    // The thread state is gone and the GIL released: only now may the slot
    // be joined.
    std::lock_guard lock(m_);
    self->exited = true;
    idle_cv_.notify_all();
}

void thread_pool::work(const py::thread_state& python) {
    std::unique_lock lock(m_);
    --starting_;
    for (;;) {
        ++idle_;
        bool retire = false;
        while (!stopping_ && queue_.empty()) {
            if (alive_ > s_.min_threads) {
                bool timed_out = cv_.wait_for(lock, s_.idle_timeout) == std::cv_status::timeout;
                retire = timed_out && queue_.empty() && !stopping_ && alive_ > s_.min_threads;
            } else {
                cv_.wait(lock);
            }
            // Every wake gives back its "on its way" mark, also when another
            // thread took the job first: a mark kept by a thread that went
            // back to sleep would make wake() skip it for good.
            if (waking_ > 0) --waking_;
            if (retire) break;
        }
        --idle_;
        if (waking_ > idle_) waking_ = idle_;   // a mark is only worth an idle thread
        if (retire || (queue_.empty() && stopping_)) break;
        if (!stand_by(lock)) continue;   // not needed after all: idle again
        ++running_;
        lock.unlock();
        {
            py::gil_restore gil(python);   // one acquisition for the whole batch
            lock.lock();
            while (!queue_.empty()) {
                job j = std::move(queue_.front().j);
                auto queued_at = queue_.front().at;
                queue_.pop_front();
                if (queued_at != std::chrono::steady_clock::time_point{}) note_queue_wait(queued_at);
                ++jobs_started_;
                // If this job blocks in Python (sleep, I/O) the rest of the queue
                // must not wait for it: call for help while work remains. The
                // helper stands by (stand_by) until the jobs stop starting.
                if (!queue_.empty()) call_help_locked();
                lock.unlock();
                j();
                j = nullptr;   // release captures while the GIL is held
                lock.lock();
            }
            lock.unlock();
        }
        lock.lock();
        --running_;
        if (running_ == 0 && standby_ > 0) standby_cv_.notify_all();   // run what came as this one left, or go idle
        idle_cv_.notify_all();
    }
    --alive_;
}

bool thread_pool::stand_by(std::unique_lock<std::mutex>& lock) {
    // While another thread runs jobs, it drains the queue itself as long as
    // it holds the GIL; this one is needed only once the jobs stop starting
    // (the runner blocked, or is in a long job). It checks every help_after,
    // which costs a wakeup per interval, not one per job. A stop does not
    // change that: the runner drains the queue.
    if (s_.help_after.count() == 0) return true;
    while (running_ > 0 && !queue_.empty()) {
        std::uint64_t seen = jobs_started_;
        ++standby_;
        bool changed = standby_cv_.wait_until(lock, std::chrono::steady_clock::now() + s_.help_after,
                                              [&] { return running_ == 0 || queue_.empty(); });
        --standby_;
        if (!changed && jobs_started_ == seen) return true;   // stuck for help_after: help
    }
    return !queue_.empty();
}

bool thread_pool::stop(long wait_ms) {
    std::list<slot> joining;
    {
        std::unique_lock lock(m_);
        if (threads_.empty()) return true;
        stopping_ = true;
        cv_.notify_all();
        standby_cv_.notify_all();
        if (wait_ms >= 0) {
            bool done = idle_cv_.wait_for(lock, std::chrono::milliseconds(wait_ms),
                                          [&] { return running_ == 0 && queue_.empty(); });
            if (!done) return false;
        }
        joining.splice(joining.end(), threads_);
    }
    for (auto& t : joining) t.thread.join();
    return true;
}

} // namespace trestle::runtime
