#pragma once
// --limit-concurrency: how many requests (and WebSocket sessions) the apps of
// one process may hold at once. A handler asks for a place when a request
// arrives and refuses the request (503 with Retry-After) when there is none;
// the place is given back when the app is done with the request. Counted for
// the Python apps (WSGI and ASGI mounts); static files and proxies run on the
// io threads and are bounded by --worker-connections instead.
#include <atomic>
#include <cstddef>

namespace trestle {

class admission {
public:
    explicit admission(std::size_t limit = 0) : limit_(limit) {}
    admission(const admission&) = delete;
    admission& operator=(const admission&) = delete;

    std::size_t limit() const { return limit_; }
    // Before serving starts only.
    void set_limit(std::size_t limit) { limit_ = limit; }

    // Any thread. True: the caller holds a place and must leave() once.
    // Without a limit nothing is counted.
    bool try_enter() {
        if (limit_ == 0) return true;
        std::size_t now = in_flight_.load(std::memory_order_relaxed);
        do {
            if (now >= limit_) {
                refused_.fetch_add(1, std::memory_order_relaxed);
                return false;
            }
        } while (!in_flight_.compare_exchange_weak(now, now + 1, std::memory_order_relaxed));
        return true;
    }
    void leave() {
        if (limit_ != 0) in_flight_.fetch_sub(1, std::memory_order_relaxed);
    }

    // A place already entered (try_enter was true), owned until release()
    // or destruction, whichever comes first.
    class place {
    public:
        place() = default;
        explicit place(admission& a) : a_(&a) {}
        place(place&& o) noexcept : a_(o.a_) { o.a_ = nullptr; }
        place& operator=(place&& o) noexcept {
            if (this != &o) {
                release();
                a_ = o.a_;
                o.a_ = nullptr;
            }
            return *this;
        }
        ~place() { release(); }
        void release() {
            if (a_) a_->leave();
            a_ = nullptr;
        }

    private:
        admission* a_ = nullptr;
    };

    std::size_t in_flight() const { return in_flight_.load(std::memory_order_relaxed); }
    std::size_t refused() const { return refused_.load(std::memory_order_relaxed); }

private:
    std::size_t limit_;
    std::atomic<std::size_t> in_flight_{0};
    std::atomic<std::size_t> refused_{0};
};

} // namespace trestle
