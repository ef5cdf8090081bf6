#pragma once
// Puts the calling thread under SCHED_BATCH. A thread in this class that is
// woken does not preempt the thread running on its core; it runs at the next
// scheduling point instead. Trestle's io threads and loop thread use it so
// that handing work to each other batches up instead of bouncing the core
// back and forth once per request (measured: about 1.2 context switches per
// request without it, with Python preempted mid-request each time).
// A thread under SCHED_IDLE (a shadow_process child's) is left there.
namespace trestle::runtime {

void set_batch_scheduling();

// Puts the calling thread under SCHED_IDLE: it runs only when nothing else
// wants its core. False (errno set) if the kernel refused.
bool set_idle_scheduling();

// Puts every thread of this process under SCHED_IDLE (the threads it
// starts later inherit it from theirs): it runs only when nothing else
// wants the core.
void set_process_idle();

// Names the calling thread (as `top -H`, `ps -L` and debuggers show it);
// Linux keeps the first 15 bytes.
void set_thread_name(const char* name);

// Gives the core to another runnable thread (sched_yield) if the calling
// thread has not done so for 200 µs; otherwise returns at once.
//
// The loop thread calls it when a response completes. When the io thread
// shares its core (pinned, or a busy machine), a long burst of loop work
// (a wave of timers firing, each answering a request) otherwise keeps the
// io thread, which is SCHED_BATCH and does not preempt, from reading the
// requests the clients send back: measured with 256 connections on a 10 ms
// sleep route, a median 2 ms of extra latency and 15% fewer requests/s.
// Since every response reaches its socket through the io thread (no
// direct write from the loop thread), the quantum is the longest a finished
// response waits for it: at 1 ms the sleep route ran at 19.2k req/s (p50
// 13.0 ms), at 200 µs 20.7k-22.2k (p50 11.3-12.0 ms), and yielding after
// every response cost more CPU than it saved (18.9k); Quart hello and raw
// ASGI hello did not move. With nothing else runnable it costs one cheap
// system call per quantum.
void yield_core_now_and_then();

} // namespace trestle::runtime
