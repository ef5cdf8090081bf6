#include "bridge/runtime/scheduling.hpp"

#include <dirent.h>
#include <pthread.h>
#include <sched.h>

#include <cstdlib>

#include <chrono>

namespace trestle::runtime {

void set_batch_scheduling() {
    // A process started at idle priority (a shadow_process child) stays there.
    int policy = 0;
    sched_param now{};
    if (pthread_getschedparam(pthread_self(), &policy, &now) == 0 && policy == SCHED_IDLE) return;
    sched_param param{};
    param.sched_priority = 0;
    pthread_setschedparam(pthread_self(), SCHED_BATCH, &param);
}

bool set_idle_scheduling() {
    sched_param sp{};
    return ::sched_setscheduler(0, SCHED_IDLE, &sp) == 0;
}

void set_process_idle() {
    DIR* d = ::opendir("/proc/self/task");
    if (!d) return;
    sched_param sp{};
    while (dirent* e = ::readdir(d)) {
        char* end = nullptr;
        long tid = std::strtol(e->d_name, &end, 10);
        if (tid > 0 && *end == '\0') ::sched_setscheduler(static_cast<pid_t>(tid), SCHED_IDLE, &sp);
    }
    ::closedir(d);
}

void set_thread_name(const char* name) { pthread_setname_np(pthread_self(), name); }

void yield_core_now_and_then() {
    constexpr auto quantum = std::chrono::microseconds(200);
    thread_local std::chrono::steady_clock::time_point last{};
    auto now = std::chrono::steady_clock::now();
    if (now - last < quantum) return;
    last = now;
    sched_yield();
}

} // namespace trestle::runtime
