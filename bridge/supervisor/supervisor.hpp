#pragma once
// The supervisor: a small single-threaded process that holds the listening
// sockets and runs the workers, each a whole server (worker.hpp) forked
// from it. It never runs app code and never starts Python, unless the apps
// were preloaded; it has no thread but its own, so forking it is safe.
//
// What it does (docs/deploy.md has the operator's view):
// - starts --workers workers; one that dies is replaced at once; one that
//   fails to boot before all have served the first time ends the
//   supervisor (exit 1), later it is retried with a growing delay;
// - replaces a worker a new one first: the new one is ready before the old
//   one is told to stop (SIGTERM) and drains. HUP does it to every worker,
//   one at a time, and so do --max-requests, --max-rss, a stuck thread
//   (--timeout-grace) and --reload;
// - USR2 starts the program on disk anew with the listeners inherited, and
//   stops once it serves; TTIN/TTOU add or remove a worker; USR1 reopens
//   the log files (its own and, through the signal, the workers');
//   TERM/INT stop every worker gracefully, a second one or QUIT at once;
// - tells systemd READY=1, RELOADING=1, STOPPING=1, STATUS= and WATCHDOG=1.
#include "bridge/net/listen_socket.hpp"

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace trestle::sd { class notifier; }

namespace trestle::metrics { class shared_table; }

namespace trestle::supervisor {

struct settings {
    std::size_t workers = 1;
    std::chrono::milliseconds graceful{30'000};     // a worker's drain; then it is killed (plus a margin)
    std::chrono::milliseconds boot_timeout{120'000};   // a worker not ready by then is killed
    std::size_t max_rss_bytes = 0;                  // 0: not checked
    bool reload = false;                            // --reload: watch these...
    std::vector<std::string> watch_dirs;            // ...directories' *.py files, recursively
    std::string config_file;                        // ...and this file
    bool preloaded = false;                         // HUP cannot load new code (logged)
    std::string program;                            // USR2 runs this...
    std::vector<std::string> argv;                  // ...with these arguments (argv[0] first)
    std::vector<net::listener> listeners;           // shared by every worker
    int upgrade_ready_fd = -1;                      // started by USR2: told once every worker serves
    metrics::shared_table* metrics = nullptr;       // the workers' metrics: exits folded in, restarts counted
};

// Runs in each new worker process, right after the fork; returns the
// worker's exit status. `link_fd` is the worker's end of its link
// (worker_link.hpp), `number` its ordinal for the log (1, 2, ...).
using worker_main = std::function<int(int link_fd, unsigned number)>;

// Around each fork, for a preloaded Python (PyOS_BeforeFork and friends).
struct fork_hooks {
    std::function<void()> before, parent, child;
};

// Supervises until stopped; returns the exit status (0, or 1 when the
// workers could not boot).
int run(settings s, sd::notifier& notify, worker_main main, fork_hooks hooks = {});

} // namespace trestle::supervisor
