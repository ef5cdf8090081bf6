#pragma once
// Puts the calling thread under SCHED_BATCH. A thread in this class that is
// woken does not preempt the thread running on its core; it runs at the next
// scheduling point instead. Trestle's io threads and loop thread use it so
// that handing work to each other batches up instead of bouncing the core
// back and forth once per request (measured: about 1.2 context switches per
// request without it, with Python preempted mid-request each time).
namespace trestle::runtime {

void set_batch_scheduling();

// Names the calling thread (as `top -H`, `ps -L` and debuggers show it);
// Linux keeps the first 15 bytes.
void set_thread_name(const char* name);

} // namespace trestle::runtime
