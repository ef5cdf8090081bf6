#include "bridge/supervisor/supervisor.hpp"
#include "bridge/observability/log.hpp"
#include "bridge/observability/sd_notify.hpp"
#include "bridge/supervisor/file_watch.hpp"
#include "bridge/observability/metrics_shared.hpp"
#include "bridge/supervisor/load_table.hpp"
#include "bridge/supervisor/process.hpp"
#include "bridge/supervisor/worker_link.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

namespace trestle::supervisor {
namespace {

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Beyond --graceful-timeout, what a stopping worker gets before SIGKILL: its
// cleanup after the drain (worker.cpp's kCleanupFloor, 2 s) and a margin.
constexpr milliseconds stop_margin{5'000};
constexpr milliseconds max_backoff{30'000};

int signal_pipe[2] = {-1, -1};

void on_signal(int sig) {
    int saved = errno;
    char c = static_cast<char>(sig);
    [[maybe_unused]] auto n = ::write(signal_pipe[1], &c, 1);
    errno = saved;
}

const int handled_signals[] = {SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGTTIN, SIGTTOU, SIGCHLD};

void install_handlers() {
    if (::pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        std::perror("trestle: pipe2");
        std::exit(1);
    }
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (int sig : handled_signals) ::sigaction(sig, &sa, nullptr);
    sigset_t set;
    sigemptyset(&set);
    for (int sig : handled_signals) sigaddset(&set, sig);
    ::sigprocmask(SIG_UNBLOCK, &set, nullptr);
}

// A new process starts from the dispositions a server expects before it
// takes its signals over: the defaults, SIGPIPE ignored.
void reset_handlers_in_child() {
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    for (int sig : handled_signals) ::sigaction(sig, &dfl, nullptr);
}

const char* signal_name(int sig) {
    switch (sig) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGQUIT: return "SIGQUIT";
    case SIGHUP: return "SIGHUP";
    case SIGUSR1: return "SIGUSR1";
    case SIGUSR2: return "SIGUSR2";
    case SIGTTIN: return "SIGTTIN";
    case SIGTTOU: return "SIGTTOU";
    default: return "a signal";
    }
}

std::string seconds(milliseconds ms) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g s", static_cast<double>(ms.count()) / 1000.0);
    return buf;
}

struct worker {
    enum class state { booting, ready, stopping };
    pid_t pid = 0;
    unsigned number = 0;
    int link = -1;                     // read end; -1 once closed
    state st = state::booting;
    bool doomed = false;               // to be replaced, a new one first
    std::string doom_reason;           // "reload", "--max-requests", ...
    pid_t replaces = 0;                // booting to replace this worker
    int slot = -1;                     // its counter in the load table
    bool killed = false;               // SIGKILLed by the supervisor
    clock::time_point deadline = clock::time_point::max();   // boot, or stop
};

class master {
public:
    master(settings s, sd::notifier& n, worker_main m, fork_hooks h)
        : s_(std::move(s)), notify_(n), main_(std::move(m)), hooks_(std::move(h)), target_(s_.workers) {}

    int run();

private:
    // events
    void on_signal(int sig);
    void on_link(worker& w);
    void reap();
    void on_exit(worker w, int status);
    void on_timers(clock::time_point now);
    void on_upgrade_pipe();
    // actions
    void spawn(pid_t replaces);
    void stop(worker& w, int sig, const std::string& why);
    void stop_all(int sig);
    void reload(const std::string& why);
    void upgrade();
    void reconcile();
    void check_rss();
    void status();
    // facts
    worker* find(pid_t pid);
    std::size_t count(worker::state st) const;
    bool reload_pending() const;
    std::string name(const worker& w) const { return "worker " + std::to_string(w.number) + " (pid " + std::to_string(w.pid) + ")"; }
    int poll_timeout(clock::time_point now) const;
    [[noreturn]] void child_main(int link_write);

    settings s_;
    sd::notifier& notify_;
    worker_main main_;
    fork_hooks hooks_;
    std::size_t target_;
    std::vector<worker> workers_;
    unsigned next_number_ = 1;
    bool booted_ = false;        // every first worker has served
    bool stopping_ = false;
    bool quitting_ = false;      // SIGQUIT, or a second TERM/INT
    bool handed_over_ = false;   // a binary upgrade took over: no STOPPING=1, no unlink
    int exit_status_ = 0;
    bool reloading_ = false;     // RELOADING=1 was sent
    milliseconds backoff_{0};
    clock::time_point next_spawn_{};
    clock::time_point next_rss_check_{};
    clock::time_point next_watchdog_{};
    std::unique_ptr<file_watch> watch_;
    pid_t upgrade_pid_ = 0;
    int upgrade_read_ = -1;
    load_table loads_;
    int child_slot_ = -1;   // the slot of the worker being forked
};

worker* master::find(pid_t pid) {
    for (auto& w : workers_)
        if (w.pid == pid) return &w;
    return nullptr;
}

std::size_t master::count(worker::state st) const {
    return static_cast<std::size_t>(std::count_if(workers_.begin(), workers_.end(), [&](const worker& w) { return w.st == st; }));
}

bool master::reload_pending() const {
    for (auto& w : workers_)
        if (w.st != worker::state::stopping && w.doomed && w.doom_reason == "reload") return true;
    return false;
}

void master::status() {
    std::size_t ready = count(worker::state::ready);
    notify_.send("STATUS=" + std::to_string(ready) + " worker(s) serving, " + std::to_string(target_) + " wanted");
}

[[noreturn]] void master::child_main(int link_write) {
    // The supervisor's descriptors are not the worker's: its signal pipe,
    // the other workers' links, the watcher, an upgrade's pipe.
    ::close(signal_pipe[0]);
    ::close(signal_pipe[1]);
    for (auto& w : workers_)
        if (w.link >= 0) ::close(w.link);
    watch_.reset();
    if (upgrade_read_ >= 0) ::close(upgrade_read_);
    notify_.close();
    reset_handlers_in_child();
    // A worker whose supervisor is gone (kill -9) stops too, gracefully.
    pid_t parent = ::getppid();
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(0);
    if (hooks_.child) hooks_.child();
    set_worker_load(loads_.valid() ? &loads_ : nullptr, child_slot_);
    metrics::set_worker_shared(s_.metrics, child_slot_);
    int rc = main_(link_write, next_number_);
    std::fflush(nullptr);
    ::_exit(rc);
}

void master::spawn(pid_t replaces) {
    int link[2];
    if (::pipe2(link, O_CLOEXEC) != 0) {
        log::error(std::string("cannot start a worker: pipe: ") + std::strerror(errno));
        return;
    }
    ::fcntl(link[0], F_SETFL, O_NONBLOCK);
    child_slot_ = loads_.take_slot();
    std::fflush(nullptr);   // what stdio holds would be written twice
    if (hooks_.before) hooks_.before();
    pid_t pid = ::fork();
    if (pid == 0) {
        ::close(link[0]);
        child_main(link[1]);
    }
    if (hooks_.parent) hooks_.parent();
    ::close(link[1]);
    if (pid < 0) {
        log::error(std::string("cannot start a worker: fork: ") + std::strerror(errno));
        ::close(link[0]);
        loads_.free_slot(child_slot_);
        next_spawn_ = clock::now() + milliseconds(1000);
        return;
    }
    worker w;
    w.pid = pid;
    w.number = next_number_++;
    w.link = link[0];
    w.replaces = replaces;
    w.slot = child_slot_;
    w.deadline = clock::now() + s_.boot_timeout;
    if (worker* old = find(replaces)) log::info("starting worker " + std::to_string(w.number) + " (pid " + std::to_string(pid) + ") to replace " + name(*old) + " (" + old->doom_reason + ")");
    else log::info("starting worker " + std::to_string(w.number) + " (pid " + std::to_string(pid) + ")");
    workers_.push_back(w);
}

void master::stop(worker& w, int sig, const std::string& why) {
    if (w.st == worker::state::stopping && sig == SIGTERM) return;
    if (w.st != worker::state::stopping) log::info("stopping " + name(w) + ": " + why);
    w.st = worker::state::stopping;
    w.deadline = clock::now() + (sig == SIGTERM ? s_.graceful + stop_margin : milliseconds(2000));
    ::kill(w.pid, sig);
}

void master::stop_all(int sig) {
    for (auto& w : workers_) {
        if (sig == SIGTERM && w.st == worker::state::stopping) continue;
        w.st = worker::state::stopping;
        w.deadline = clock::now() + (sig == SIGTERM ? s_.graceful + stop_margin : milliseconds(2000));
        ::kill(w.pid, sig);
    }
}

void master::reload(const std::string& why) {
    if (stopping_) return;
    std::size_t n = 0;
    for (auto& w : workers_) {
        if (w.st == worker::state::stopping) continue;
        if (w.st == worker::state::booting) {
            // Not serving yet, so nothing to hand over: it starts again.
            stop(w, SIGKILL, "restarted by the reload before it served");
            continue;
        }
        w.doomed = true;
        w.doom_reason = "reload";
        ++n;
    }
    log::info(why + ": replacing " + std::to_string(n) + " worker(s), one at a time, each by a new one that is ready first" +
              (s_.preloaded ? " (with --preload the new workers run the code the supervisor imported: SIGUSR2 loads new code)" : ""));
    if (!reloading_) {
        timespec ts{};
        ::clock_gettime(CLOCK_MONOTONIC, &ts);
        unsigned long long usec = static_cast<unsigned long long>(ts.tv_sec) * 1000000ull + static_cast<unsigned long long>(ts.tv_nsec) / 1000;
        notify_.send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec) + "\nSTATUS=reloading");
        reloading_ = true;
    }
    backoff_ = milliseconds(0);
    next_spawn_ = clock::now();
}

// The workers wanted now: lost ones replaced (and TTIN/TTOU), doomed ones
// replaced one at a time.
void master::reconcile() {
    if (stopping_) return;
    auto now = clock::now();
    std::size_t planned = 0;      // the workers serving once the replacements under way are done
    bool replacing = false;       // a replacement is booting
    for (auto& w : workers_) {
        if (w.st == worker::state::stopping) continue;
        if (w.st == worker::state::booting && w.replaces) replacing = true;
        if (!w.doomed) ++planned;
        else if (!std::any_of(workers_.begin(), workers_.end(), [&](const worker& r) { return r.replaces == w.pid && r.st != worker::state::stopping; }))
            ++planned;
    }
    if (now < next_spawn_) return;
    while (planned < target_) {
        spawn(0);
        ++planned;
    }
    while (planned > target_) {
        // TTOU: a doomed worker first, else the newest.
        worker* pick = nullptr;
        for (auto& w : workers_)
            if (w.st != worker::state::stopping && w.doomed) pick = &w;
        if (!pick)
            for (auto& w : workers_)
                if (w.st != worker::state::stopping) pick = &w;
        if (!pick) break;
        stop(*pick, SIGTERM, "fewer workers wanted (" + std::to_string(target_) + ")");
        --planned;
    }
    if (replacing) return;
    for (auto& w : workers_) {
        if (w.st != worker::state::ready || !w.doomed) continue;
        spawn(w.pid);
        return;
    }
}

void master::on_signal(int sig) {
    switch (sig) {
    case SIGCHLD: return;   // reap() runs after every wakeup
    case SIGINT:
    case SIGTERM:
        if (stopping_) {
            if (quitting_) return;
            log::warning(std::string("second signal (") + signal_name(sig) + "): stopping the workers now");
            quitting_ = true;
            stop_all(SIGQUIT);
            return;
        }
        log::info(std::string("received ") + signal_name(sig) + ": stopping " + std::to_string(workers_.size()) +
                  " worker(s) gracefully (up to " + seconds(s_.graceful) + ")");
        stopping_ = true;
        notify_.send("STOPPING=1\nSTATUS=stopping");
        stop_all(SIGTERM);
        return;
    case SIGQUIT:
        log::info("received SIGQUIT: stopping the workers now, without a drain");
        stopping_ = quitting_ = true;
        notify_.send("STOPPING=1\nSTATUS=stopping now");
        stop_all(SIGQUIT);
        return;
    case SIGHUP:
        reload("received SIGHUP");
        return;
    case SIGUSR1: {
        std::string why;
        if (log::has_error_log_file() && !log::reopen_error_log(why)) log::error("received SIGUSR1: " + why);
        else log::info("received SIGUSR1: reopening the log files (this process's and each worker's)");
        for (auto& w : workers_)
            if (w.st != worker::state::booting) ::kill(w.pid, SIGUSR1);
        return;
    }
    case SIGUSR2:
        upgrade();
        return;
    case SIGTTIN:
        if (target_ >= 1024) return;
        ++target_;
        log::info("received SIGTTIN: " + std::to_string(target_) + " worker(s) wanted");
        return;
    case SIGTTOU:
        if (target_ <= 1) {
            log::info("received SIGTTOU: already one worker; ignored");
            return;
        }
        --target_;
        log::info("received SIGTTOU: " + std::to_string(target_) + " worker(s) wanted");
        return;
    }
}

void master::on_link(worker& w) {
    char buf[64];
    ssize_t n = ::read(w.link, buf, sizeof buf);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        ::close(w.link);   // the worker is exiting; reap() hears of it
        w.link = -1;
        return;
    }
    for (ssize_t i = 0; i < n; ++i) {
        switch (static_cast<worker_event>(buf[i])) {
        case worker_event::ready:
            if (w.st != worker::state::booting) break;
            w.st = worker::state::ready;
            w.deadline = clock::time_point::max();
            backoff_ = milliseconds(0);
            log::info(name(w) + " is serving");
            if (worker* old = find(w.replaces); old && old->st != worker::state::stopping)
                stop(*old, SIGTERM, "replaced by " + name(w));
            w.replaces = 0;
            break;
        case worker_event::recycle:
            if (w.doomed || w.st != worker::state::ready) break;
            w.doomed = true;
            w.doom_reason = "--max-requests";
            break;
        case worker_event::stuck:
            if (w.st == worker::state::stopping) break;
            w.doomed = true;
            w.doom_reason = "a thread stuck past --timeout-grace";
            break;
        }
    }
}

void master::on_exit(worker w, int status) {
    std::string how = describe_status(status);
    bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (w.link >= 0) ::close(w.link);
    if (s_.metrics) {
        // Its last counts join the retired totals before the slot is reused.
        s_.metrics->retire(w.slot);
        if (w.st == worker::state::stopping && w.doomed) {
            using c = metrics::restart_cause;
            const std::string& why = w.doom_reason;
            s_.metrics->count_restart(why == "reload"          ? c::reload
                                      : why == "--max-requests" ? c::max_requests
                                      : why == "--max-rss"      ? c::max_rss
                                                                : c::stuck);
        } else if (w.st != worker::state::stopping && !stopping_ && booted_) {
            s_.metrics->count_restart(metrics::restart_cause::crash);
        }
    }
    loads_.free_slot(w.slot);
    // A booting replacement of this worker now only adds capacity.
    for (auto& r : workers_)
        if (r.replaces == w.pid) r.replaces = 0;
    if (w.st == worker::state::stopping) {
        if (w.killed) log::warning(name(w) + " did not stop in time: killed");
        else if (clean) log::info(name(w) + " stopped");
        else log::info(name(w) + " stopped: " + how);
        return;
    }
    if (w.st == worker::state::booting) {
        if (!booted_) {
            log::critical(name(w) + " failed to boot: " + how + " (the error is above); stopping");
            // A usage error (a bad app name, a broken config file) keeps
            // its status 2; any other failure is 1.
            exit_status_ = WIFEXITED(status) && WEXITSTATUS(status) == 2 ? 2 : 1;
            stopping_ = true;
            notify_.send("STOPPING=1\nSTATUS=a worker failed to boot");
            stop_all(SIGTERM);
            return;
        }
        backoff_ = std::clamp(backoff_ * 2, milliseconds(1000), max_backoff);
        next_spawn_ = clock::now() + backoff_;
        if (worker* old = find(w.replaces); old && old->doom_reason == "reload") {
            for (auto& o : workers_)
                if (o.doomed && o.doom_reason == "reload") o.doomed = false;
            log::error("reload failed: new " + name(w) + " " + how + " before it served (the error is above); the old workers keep serving");
            backoff_ = milliseconds(0);
            next_spawn_ = clock::now();
            return;
        }
        log::error("new " + name(w) + " " + how + " before it served (the error is above); trying again in " + seconds(backoff_));
        return;
    }
    log::error(name(w) + " died while serving: " + how + "; starting a new one");
}

void master::reap() {
    for (;;) {
        int status = 0;
        pid_t pid = ::waitpid(-1, &status, WNOHANG);
        if (pid <= 0) return;
        if (pid == upgrade_pid_) {
            log::error("binary upgrade failed: the new supervisor (pid " + std::to_string(pid) + ") " +
                       describe_status(status) + " before it served; still serving");
            upgrade_pid_ = 0;
            if (upgrade_read_ >= 0) ::close(upgrade_read_);
            upgrade_read_ = -1;
            continue;
        }
        auto it = std::find_if(workers_.begin(), workers_.end(), [&](const worker& w) { return w.pid == pid; });
        if (it == workers_.end()) continue;   // an old supervisor's child, or an upgraded one's
        worker w = *it;
        workers_.erase(it);
        on_exit(w, status);
    }
}

void master::check_rss() {
    for (auto& w : workers_) {
        if (w.st != worker::state::ready || w.doomed) continue;
        std::size_t rss = resident_bytes(w.pid);
        if (rss <= s_.max_rss_bytes) continue;
        log::info(name(w) + " uses " + std::to_string(rss >> 20) + " MiB, over --max-rss " + std::to_string(s_.max_rss_bytes >> 20) + " MiB");
        w.doomed = true;
        w.doom_reason = "--max-rss";
    }
}

void master::on_timers(clock::time_point now) {
    for (auto& w : workers_) {
        if (now < w.deadline || w.killed) continue;
        if (w.st == worker::state::booting) {
            log::error(name(w) + " did not start serving within " + seconds(s_.boot_timeout) + ": killing it");
        } else if (w.st != worker::state::stopping) {
            continue;
        }
        w.killed = true;
        w.deadline = clock::time_point::max();
        ::kill(w.pid, SIGKILL);
    }
    if (s_.max_rss_bytes && now >= next_rss_check_) {
        check_rss();
        next_rss_check_ = now + milliseconds(1000);
    }
    if (notify_.enabled() && notify_.watchdog_interval().count() > 0 && now >= next_watchdog_) {
        notify_.send("WATCHDOG=1");
        next_watchdog_ = now + std::chrono::duration_cast<milliseconds>(notify_.watchdog_interval());
    }
    if (watch_) {
        std::string changed = watch_->take_due(now);
        if (!changed.empty()) reload("--reload: " + changed + " changed");
    }
}

int master::poll_timeout(clock::time_point now) const {
    clock::time_point next = clock::time_point::max();
    for (auto& w : workers_)
        if (!w.killed) next = std::min(next, w.deadline);
    if (!stopping_ && next_spawn_ > now) next = std::min(next, next_spawn_);
    if (s_.max_rss_bytes) next = std::min(next, next_rss_check_);
    if (notify_.enabled() && notify_.watchdog_interval().count() > 0) next = std::min(next, next_watchdog_);
    if (watch_) next = std::min(next, watch_->due());
    if (next == clock::time_point::max()) return -1;
    auto ms = std::chrono::duration_cast<milliseconds>(next - now).count() + 1;
    return static_cast<int>(std::clamp<long long>(ms, 0, 60'000));
}

void master::upgrade() {
    if (stopping_) return;
    if (upgrade_pid_) {
        log::warning("received SIGUSR2: an upgrade is already under way (pid " + std::to_string(upgrade_pid_) + "); ignored");
        return;
    }
    if (s_.program.empty()) {
        log::error("received SIGUSR2: the program's path is unknown (argv[0]); cannot upgrade");
        return;
    }
    int ready[2];
    if (::pipe2(ready, O_CLOEXEC) != 0) {
        log::error(std::string("received SIGUSR2: pipe: ") + std::strerror(errno));
        return;
    }
    const int n = static_cast<int>(s_.listeners.size());
    std::string notify_socket = notify_.socket_name();
    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid == 0) {
        // The listeners become 3..3+n-1 and the ready pipe 3+n, the way
        // LISTEN_FDS numbers them, without the close-on-exec flag. They are
        // first moved above that range so no dup2 overwrites one still needed.
        const int high = 3 + n + 1;
        std::vector<int> moved;
        for (auto& l : s_.listeners) moved.push_back(::fcntl(l.fd, F_DUPFD_CLOEXEC, high));
        int ready_moved = ::fcntl(ready[1], F_DUPFD_CLOEXEC, high);
        for (int i = 0; i < n; ++i) ::dup2(moved[i], 3 + i);
        ::dup2(ready_moved, 3 + n);
        reset_handlers_in_child();
        ::setenv("TRESTLE_UPGRADE_FDS", std::to_string(n).c_str(), 1);
        ::setenv("TRESTLE_UPGRADE_READY_FD", std::to_string(3 + n).c_str(), 1);
        if (!notify_socket.empty()) ::setenv("NOTIFY_SOCKET", notify_socket.c_str(), 1);
        std::vector<char*> args;
        for (auto& a : s_.argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        ::execv(s_.program.c_str(), args.data());
        std::fprintf(stderr, "trestle: error: binary upgrade: cannot run %s: %s\n", s_.program.c_str(), std::strerror(errno));
        ::_exit(127);
    }
    ::close(ready[1]);
    if (pid < 0) {
        log::error(std::string("received SIGUSR2: fork: ") + std::strerror(errno));
        ::close(ready[0]);
        return;
    }
    ::fcntl(ready[0], F_SETFL, O_NONBLOCK);
    upgrade_pid_ = pid;
    upgrade_read_ = ready[0];
    log::info("received SIGUSR2: starting " + s_.program + " (pid " + std::to_string(pid) +
              ") with the listening sockets; this supervisor stops once it serves");
}

void master::on_upgrade_pipe() {
    char c;
    ssize_t n = ::read(upgrade_read_, &c, 1);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    ::close(upgrade_read_);
    upgrade_read_ = -1;
    if (n != 1) return;   // closed without a word: reap() reports the exit
    log::info("binary upgrade: the new supervisor (pid " + std::to_string(upgrade_pid_) + ") serves; stopping this one's workers gracefully");
    upgrade_pid_ = 0;   // no longer ours to report
    handed_over_ = true;
    stopping_ = true;
    stop_all(SIGTERM);
}

int master::run() {
    install_handlers();
    if (s_.workers > 1 && !loads_.create()) log::warning("no shared memory for the workers' connection counts; each accepts as if alone");
    if (s_.reload) {
        watch_ = std::make_unique<file_watch>();
        std::string why;
        for (auto& d : s_.watch_dirs)
            if (!watch_->add_tree(d, why)) log::warning("--reload: " + why);
        if (!s_.config_file.empty() && !watch_->add_file(s_.config_file, why)) log::warning("--reload: " + why);
        log::info("--reload: watching *.py under " + std::to_string(watch_->watched_dirs()) + " directories" +
                  (s_.config_file.empty() ? "" : ", and " + s_.config_file));
    }
    log::info("supervisor pid " + std::to_string(::getpid()) + ": starting " + std::to_string(target_) + " worker(s)");
    reconcile();
    while (!(stopping_ && workers_.empty())) {
        auto now = clock::now();
        std::vector<pollfd> fds;
        fds.push_back({signal_pipe[0], POLLIN, 0});
        std::vector<pid_t> linked;
        for (auto& w : workers_)
            if (w.link >= 0) {
                fds.push_back({w.link, POLLIN, 0});
                linked.push_back(w.pid);
            }
        int watch_at = -1, upgrade_at = -1;
        if (watch_ && watch_->fd() >= 0) watch_at = static_cast<int>(fds.size()), fds.push_back({watch_->fd(), POLLIN, 0});
        if (upgrade_read_ >= 0) upgrade_at = static_cast<int>(fds.size()), fds.push_back({upgrade_read_, POLLIN, 0});
        int rc = ::poll(fds.data(), fds.size(), poll_timeout(now));
        if (rc < 0 && errno != EINTR) {
            log::critical(std::string("poll: ") + std::strerror(errno));
            stop_all(SIGKILL);
            return 1;
        }
        if (rc > 0) {
            if (fds[0].revents) {
                char sigs[64];
                ssize_t n;
                while ((n = ::read(signal_pipe[0], sigs, sizeof sigs)) > 0)
                    for (ssize_t i = 0; i < n; ++i) on_signal(static_cast<unsigned char>(sigs[i]));
            }
            for (std::size_t i = 0; i < linked.size(); ++i)
                if (fds[i + 1].revents)
                    if (worker* w = find(linked[i]); w && w->link >= 0) on_link(*w);
            if (watch_at >= 0 && fds[watch_at].revents) watch_->read_events();
            if (upgrade_at >= 0 && fds[upgrade_at].revents) on_upgrade_pipe();
        }
        reap();
        on_timers(clock::now());
        reconcile();
        if (!booted_ && !stopping_ && count(worker::state::ready) >= target_) {
            booted_ = true;
            log::info(std::to_string(target_) + " worker(s) serving");
            notify_.send("READY=1\nSTATUS=" + std::to_string(target_) + " worker(s) serving\nMAINPID=" + std::to_string(::getpid()));
            if (s_.upgrade_ready_fd >= 0) {
                char c = 'R';
                [[maybe_unused]] auto n = ::write(s_.upgrade_ready_fd, &c, 1);
                ::close(s_.upgrade_ready_fd);
                s_.upgrade_ready_fd = -1;
            }
        }
        if (reloading_ && !reload_pending() && std::none_of(workers_.begin(), workers_.end(), [](const worker& w) { return w.replaces != 0; })) {
            reloading_ = false;
            log::info("reload done: " + std::to_string(count(worker::state::ready)) + " worker(s) serving");
            notify_.send("READY=1");
            status();
        }
    }
    if (!handed_over_) {
        notify_.send("STATUS=stopped");
        for (auto& l : s_.listeners)
            if (!l.unix_path.empty()) ::unlink(l.unix_path.c_str());
    }
    log::info(exit_status_ ? "stopped (a worker failed to boot)" : "stopped");
    return exit_status_;
}

} // namespace

int run(settings s, sd::notifier& notify, worker_main main, fork_hooks hooks) {
    master m(std::move(s), notify, std::move(main), std::move(hooks));
    return m.run();
}

} // namespace trestle::supervisor
