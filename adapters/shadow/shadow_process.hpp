#pragma once
// shadow_process = true: the shadow app runs in a Trestle process of its
// own, a child of the one that serves the primary, and is reached as a
// proxy shadow on loopback (docs/configuration.md, "Shadow mode").
//
// Why a process: in one process the shadow's Python shares the GIL and the
// core with the primary's, and a replay that holds the GIL cannot be
// interrupted when a primary request arrives. In a child at SCHED_IDLE the
// kernel runs the shadow only when the primary's threads have nothing to
// do, and preempts it at once when they do. The shadow also gets its own
// sys.modules (a port may reuse the legacy app's module names), its own
// memory, and a crash in it does not end the primary.
//
// The child: this program, given the mount's prefix and app, the parent's
// Python settings, and a listening socket the parent made (127.0.0.1, a
// free port) as fd://3. It loads and starts the app at normal priority (on
// a busy machine an idle-priority start would hold the server's own start
// behind it), then lowers every thread of itself to SCHED_IDLE and tells
// it is ready over a private sd_notify socket. It dies with the thread that
// made it (PR_SET_PDEATHSIG), and is stopped (SIGTERM, then SIGKILL) when
// its owner is destroyed.
//
// A child that ends on its own (a crash in the shadow app, the OOM killer)
// is logged and started again by a keeper thread, on the same listening
// socket (which this process keeps open, so replays meanwhile wait in its
// backlog, bounded by shadow_timeout), after 1 s, doubling to 30 s while
// it keeps ending within 30 s of its start.
#include "bridge/config/options.hpp"

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <sys/types.h>
#include <thread>
#include <vector>

namespace trestle::shadow {

class shadow_process {
public:
    // Set in the child's environment: it lowers itself to SCHED_IDLE once
    // its app is loaded and started, just before it serves.
    static constexpr const char* child_env = "TRESTLE_SHADOW_PROCESS";

    // Starts the child for `primary`'s shadow and waits until it serves.
    // Throws mount_error: status 2 for a socket or fork that fails, the
    // child's own exit status (1 for a shadow app that does not load) if it
    // exits first.
    shadow_process(const mount_spec& primary, const options& opt);
    ~shadow_process();
    shadow_process(const shadow_process&) = delete;
    shadow_process& operator=(const shadow_process&) = delete;

    // "http://127.0.0.1:PORT": the proxy target that reaches it.
    const std::string& url() const { return url_; }
    // The child serving now (-1 between a child's end and the next start).
    pid_t pid() const;
    // Children started again after one ended on its own.
    unsigned restarts() const;
    // The mount spec of the proxy shadow that stands for it (the primary's
    // prefix; the URI sent unchanged, Host kept).
    const mount_spec& proxy_spec() const { return spec_; }

private:
    enum class start_result { ready, ended, not_ready, stopping };
    // Forks and execs a child on the listening socket. Called with m_ held.
    pid_t spawn();
    // Waits for the child's READY=1. `ended`: it exited first (reaped,
    // status in `status`); `not_ready`: `limit` passed; `stopping`: the
    // destructor began.
    start_result wait_ready(std::chrono::milliseconds limit, int& status);
    // Reaps the child if it has ended (WNOHANG); m_ held.
    bool reap_locked(int& status);
    void keep();   // the keeper thread

    mutable std::mutex m_;
    std::condition_variable cv_;
    pid_t pid_ = -1;          // guarded by m_; a child is reaped only with m_ held, so a kill under m_ is safe
    bool stopping_ = false;   // guarded by m_
    bool kept_ = false;       // guarded by m_: the keeper has finished
    unsigned restarts_ = 0;   // guarded by m_
    pid_t owner_ = -1;        // the process that started it: only it stops the child
    int listen_fd_ = -1;      // kept open: a child started again serves on it
    int notify_fd_ = -1;
    std::chrono::milliseconds grace_;
    std::chrono::milliseconds ready_limit_;
    std::string url_;
    std::string who_;         // "the shadow process of /orders", for the log
    std::vector<std::string> args_, env_;
    mount_spec spec_;
    std::thread keeper_;
};

} // namespace trestle::shadow
