#include "bridge/runtime/scheduling.hpp"

#include <pthread.h>
#include <sched.h>

namespace trestle::runtime {

void set_batch_scheduling() {
    sched_param param{};
    param.sched_priority = 0;
    pthread_setschedparam(pthread_self(), SCHED_BATCH, &param);
}

void set_thread_name(const char* name) { pthread_setname_np(pthread_self(), name); }

} // namespace trestle::runtime
