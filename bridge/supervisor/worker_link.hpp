#pragma once
// A worker's side of its link to the supervisor: a pipe the worker writes
// one byte to for each event. Without a supervisor (one process) every call
// is a no-op that returns false.
namespace trestle::supervisor {

enum class worker_event : char {
    ready = 'R',     // the worker serves: an old one it replaces may now stop
    recycle = 'X',   // --max-requests or --max-rss reached: replace me, then stop me
    stuck = 'S',     // a thread did not come back after --timeout-grace: replace me,
                     // then stop me; my pool cannot finish its jobs
};

// Set once, in the worker, before it serves (the fd is the pipe's write end).
void set_link(int fd);
bool linked();
// Async-signal-safe and thread-safe (one write(2)). Each event other than
// `ready` is sent at most once per worker.
bool tell(worker_event e);

} // namespace trestle::supervisor
