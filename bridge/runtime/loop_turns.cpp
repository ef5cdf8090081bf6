#include "bridge/runtime/loop_turns.hpp"

#include <cerrno>
#include <dlfcn.h>
#include <signal.h>
#include <sys/epoll.h>

namespace trestle::runtime {

namespace {
thread_local turn_meter* tl_meter = nullptr;

// One writer (the metered thread): a load and a store, no read-modify-write.
void bump(std::atomic<std::uint64_t>& a, std::uint64_t by) {
    a.store(a.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
}
} // namespace

void turn_meter::waiting() {
    if (!in_turn_) return;
    in_turn_ = false;
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - started_).count();
    auto took = static_cast<std::uint64_t>(ns > 0 ? ns : 0);
    bump(turns_, 1);
    bump(ns_, took);
    for (std::size_t i = 0; i < long_turn.size(); ++i)
        if (static_cast<double>(took) > long_turn[i] * 1e9) bump(long_[i], 1);
}

void turn_meter::woke() {
    started_ = std::chrono::steady_clock::now();
    in_turn_ = true;
}

void meter_turns(turn_meter* m) { tl_meter = m; }

} // namespace trestle::runtime

// The interposed waits (see loop_turns.hpp). The next definition in the
// lookup order is the C library's (or a sanitizer's interceptor, which
// calls it); errno is the real call's.
namespace {

template <class Fn, class... Args>
int metered_wait(const char* name, Args... args) {
    static const auto real = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    trestle::runtime::turn_meter* m = trestle::runtime::tl_meter;
    if (m) m->waiting();
    int n = real(args...);
    if (m) m->woke();
    return n;
}

} // namespace

extern "C" {

int epoll_wait(int epfd, struct epoll_event* events, int maxevents, int timeout) {
    return metered_wait<int (*)(int, epoll_event*, int, int)>("epoll_wait", epfd, events, maxevents, timeout);
}

int epoll_pwait(int epfd, struct epoll_event* events, int maxevents, int timeout, const sigset_t* sigmask) {
    return metered_wait<int (*)(int, epoll_event*, int, int, const sigset_t*)>("epoll_pwait", epfd, events, maxevents,
                                                                                timeout, sigmask);
}

} // extern "C"
