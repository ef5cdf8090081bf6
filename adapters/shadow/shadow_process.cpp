#include "adapters/shadow/shadow_process.hpp"

#include "bridge/core/services.hpp"
#include "bridge/observability/log.hpp"
#include "bridge/runtime/scheduling.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

extern char** environ;

namespace trestle::shadow {

namespace {

constexpr int kChildListenFd = 3;

std::string seconds(std::chrono::milliseconds ms) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", static_cast<double>(ms.count()) / 1000.0);
    return buf;
}

[[noreturn]] void fail(const std::string& what) { throw mount_error(2, "shadow_process: " + what + ": " + std::strerror(errno)); }

// A descriptor closed when the scope ends, unless released.
struct fd_guard {
    int fd;
    ~fd_guard() {
        if (fd >= 0) ::close(fd);
    }
};

// This process's own program, as the kernel holds it: it runs even when a
// package upgrade has since replaced (deleted) the file at its path, and the
// child then runs the same version as its parent.
constexpr const char* kSelf = "/proc/self/exe";

// The child's command line: the shadow app at the primary's prefix, with
// the settings that decide how an app loads and is served.
std::vector<std::string> child_args(const mount_spec& primary, const options& opt) {
    const mount_spec& t = *primary.shadow->target;
    std::vector<std::string> a{"trestle", "--bind", "fd://" + std::to_string(kChildListenFd), "--workers", "1"};
    auto add = [&](const char* flag, const std::string& v) {
        a.emplace_back(flag);
        a.push_back(v);
    };
    add("--interface", t.interface.empty() ? opt.interface : t.interface);
    add("--threads", std::to_string(opt.threads));
    add("--blocking-threads", std::to_string(opt.blocking_threads));
    add("--max-queue", std::to_string(opt.max_queue));
    add("--loop", opt.loop);
    add("--lifespan", opt.lifespan);
    add("--flask-loop", opt.flask_loop);
    if (!opt.flask_async) a.emplace_back("--no-flask-async");
    add("--startup-timeout", seconds(opt.startup_timeout));
    add("--graceful-timeout", seconds(opt.graceful_timeout));
    // Its warnings and errors (an app's traceback) go to the shared log; its
    // start-up lines would read as the server's own ("listening on ...").
    bool quieter = opt.log_level == "error" || opt.log_level == "critical";
    add("--log-level", quieter ? opt.log_level : "warning");
    for (auto& p : opt.pythonpath) add("--pythonpath", p);
    if (!opt.venv.empty()) add("--venv", opt.venv);
    // The request already passed the primary's limits; the child's are no tighter.
    add("--max-header-bytes", std::to_string(opt.limits.max_header_bytes));
    add("--max-header-count", std::to_string(opt.limits.max_header_count));
    add("--max-body-bytes", std::to_string(opt.limits.max_body_bytes));
    // The client's address comes in X-Forwarded-For from the parent.
    add("--forwarded-allow-ips", "127.0.0.1");
    a.push_back(primary.prefix.empty() ? t.app : primary.prefix + "=" + t.app);
    return a;
}

// This process's environment for the child: its own sd_notify socket, and
// nothing that would make it take this process's sockets or role.
std::vector<std::string> child_environment(const std::string& notify) {
    static const char* dropped[] = {"NOTIFY_SOCKET=", "WATCHDOG_USEC=", "WATCHDOG_PID=", "LISTEN_FDS=", "LISTEN_PID=",
                                    "LISTEN_FDNAMES=", "TRESTLE_UPGRADE_FDS=", "TRESTLE_UPGRADE_READY_FD=",
                                    "TRESTLE_CONFIG=", "WEB_CONCURRENCY=", "TRESTLE_SHADOW_PROCESS="};
    std::vector<std::string> env;
    for (char** e = environ; e && *e; ++e) {
        std::string_view v(*e);
        bool drop = false;
        for (const char* d : dropped) drop = drop || v.starts_with(d);
        if (!drop) env.emplace_back(v);
    }
    env.push_back("NOTIFY_SOCKET=" + notify);
    env.push_back(std::string(shadow_process::child_env) + "=1");
    return env;
}

std::vector<char*> pointers(std::vector<std::string>& v) {
    std::vector<char*> p;
    for (auto& s : v) p.push_back(s.data());
    p.push_back(nullptr);
    return p;
}

std::string describe_exit(int status) {
    if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return std::string("was killed by signal ") + std::to_string(WTERMSIG(status));
    return "stopped";
}

} // namespace

shadow_process::shadow_process(const mount_spec& primary, const options& opt)
    : grace_(opt.graceful_timeout), ready_limit_(opt.startup_timeout + std::chrono::seconds(30)) {
    // The listening socket, made here so the port is known before the child
    // runs, and kept: a child started again serves on it.
    fd_guard listener{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    if (listener.fd < 0) fail("socket");
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (::bind(listener.fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) fail("bind 127.0.0.1:0");
    if (::listen(listener.fd, opt.backlog) != 0) fail("listen");
    if (::getsockname(listener.fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0) fail("getsockname");
    url_ = "http://127.0.0.1:" + std::to_string(ntohs(sa.sin_port));

    // Its readiness comes over a datagram socket in the abstract namespace.
    static std::atomic<unsigned> serial{0};
    std::string name = "trestle-shadow-" + std::to_string(::getpid()) + "-" + std::to_string(serial++) + "-" +
                       std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
    fd_guard notify{::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)};
    if (notify.fd < 0) fail("socket (AF_UNIX)");
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    if (name.size() + 1 >= sizeof un.sun_path) name.resize(sizeof un.sun_path - 2);
    std::memcpy(un.sun_path + 1, name.data(), name.size());
    if (::bind(notify.fd, reinterpret_cast<sockaddr*>(&un),
               static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size())) != 0)
        fail("bind @" + name);

    args_ = child_args(primary, opt);
    env_ = child_environment("@" + name);
    who_ = "the shadow process of " + (primary.prefix.empty() ? std::string("/") : primary.prefix);
    owner_ = ::getpid();
    spec_.prefix = primary.prefix;
    spec_.type = mount_spec::kind::proxy;
    spec_.origin = primary.origin;
    spec_.shadow_target = true;
    spec_.proxy.upstreams = {url_};
    spec_.proxy.preserve_host = true;
    spec_.proxy.upgrades.clear();
    spec_.proxy.max_fails = 0;
    spec_.proxy.read_timeout = primary.shadow->timeout + std::chrono::seconds(5);

    listen_fd_ = listener.fd;
    notify_fd_ = notify.fd;
    {
        std::lock_guard lk(m_);
        pid_ = spawn();
    }
    if (pid_ < 0) fail("fork");
    const std::string first = who_ + " (pid " + std::to_string(pid_) + ")";
    int status = 0;
    start_result r = wait_ready(ready_limit_, status);
    if (r != start_result::ready) {
        // Still running (it did not get ready in time): ended here. Never
        // kill(-1): pid_ is -1 once the child has been reaped.
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, &status, 0);
            pid_ = -1;
        }
        listen_fd_ = notify_fd_ = -1;   // the guards close them
        if (r == start_result::ended) {
            int code = WIFEXITED(status) && WEXITSTATUS(status) != 0 ? WEXITSTATUS(status) : 1;
            throw mount_error(code, first + " " + describe_exit(status) + " before it served (its error is above)");
        }
        throw mount_error(1, first + " did not get ready in " + seconds(ready_limit_) + " s");
    }
    listener.fd = notify.fd = -1;   // kept
    keeper_ = std::thread([this] { keep(); });
}

pid_t shadow_process::spawn() {
    std::vector<char*> argv = pointers(args_), envp = pointers(env_);
    const pid_t parent = ::getpid();
    const int lfd = listen_fd_;
    // After fork only async-signal-safe calls: this process has threads.
    pid_t pid = ::fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        // Ends with the thread that started it (the serving process's main
        // thread, or the keeper), gracefully; and if that is already gone,
        // at once.
        ::prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (::getppid() != parent) ::_exit(1);
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        if (lfd == kChildListenFd) {
            ::fcntl(lfd, F_SETFD, 0);
        } else if (::dup2(lfd, kChildListenFd) < 0) {
            ::_exit(127);
        }
        ::execve(kSelf, argv.data(), envp.data());
        static const char msg[] = "trestle: error: shadow_process: cannot run this program again\n";
        [[maybe_unused]] auto n = ::write(2, msg, sizeof msg - 1);
        ::_exit(127);
    }
    return pid;
}

bool shadow_process::reap_locked(int& status) {
    if (pid_ <= 0) return false;
    if (::waitpid(pid_, &status, WNOHANG) != pid_) return false;
    pid_ = -1;
    return true;
}

shadow_process::start_result shadow_process::wait_ready(std::chrono::milliseconds limit, int& status) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
        {
            std::lock_guard lk(m_);
            if (reap_locked(status)) return start_result::ended;
            if (stopping_) return start_result::stopping;
        }
        if (std::chrono::steady_clock::now() >= deadline) return start_result::not_ready;
        pollfd p{notify_fd_, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        char buf[512];
        ssize_t n = ::recv(notify_fd_, buf, sizeof buf - 1, 0);
        if (n <= 0) continue;
        std::string_view msg(buf, static_cast<std::size_t>(n));
        if (msg.starts_with("READY=1") || msg.find("\nREADY=1") != std::string_view::npos) return start_result::ready;
    }
}

void shadow_process::keep() {
    using namespace std::chrono_literals;
    runtime::set_thread_name("trestle-keeper");
    constexpr auto first_backoff = 1s, longest_backoff = 30s, long_enough = 30s;
    std::chrono::milliseconds backoff = first_backoff;
    auto started = std::chrono::steady_clock::now();
    std::unique_lock lk(m_);
    for (;;) {
        if (pid_ > 0) {
            // Waits for the child to end without reaping it: it stays a
            // zombie, its pid ours, until reaped here with m_ held, so the
            // destructor's kill under m_ never reaches a recycled pid.
            const pid_t pid = pid_;
            lk.unlock();
            siginfo_t info{};
            while (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT) != 0 && errno == EINTR) {
            }
            lk.lock();
            int status = 0;
            ::waitpid(pid, &status, 0);
            pid_ = -1;
            if (stopping_) break;
            log::warning("shadow: " + who_ + " (pid " + std::to_string(pid) + ") " + describe_exit(status));
        }
        if (stopping_) break;
        if (std::chrono::steady_clock::now() - started >= long_enough) backoff = first_backoff;
        log::warning("shadow: starting " + who_ + " again in " + seconds(backoff) +
                     " s (replays meanwhile wait in its backlog, or fail at shadow_timeout)");
        if (cv_.wait_for(lk, backoff, [this] { return stopping_; })) break;
        backoff = std::min<std::chrono::milliseconds>(backoff * 2, longest_backoff);
        started = std::chrono::steady_clock::now();
        pid_ = spawn();
        if (pid_ < 0) {
            log::error("shadow: cannot start " + who_ + " again: fork: " + std::strerror(errno));
            continue;
        }
        ++restarts_;
        const pid_t pid = pid_;
        lk.unlock();
        int status = 0;
        start_result r = wait_ready(ready_limit_, status);
        lk.lock();
        switch (r) {
        case start_result::ready:
            log::info("shadow: " + who_ + " serves again (pid " + std::to_string(pid) + ")");
            break;
        case start_result::ended:   // reaped by wait_ready
            log::warning("shadow: " + who_ + " (pid " + std::to_string(pid) + ") " + describe_exit(status) +
                         " before it served (its error is above)");
            break;
        case start_result::not_ready:   // not reaped: the next turn reaps it
            log::error("shadow: " + who_ + " (pid " + std::to_string(pid) + ") did not get ready in " +
                       seconds(ready_limit_) + " s; killing it");
            ::kill(pid, SIGKILL);
            break;
        case start_result::stopping:   // the destructor sent it SIGTERM: the next turn reaps it
            break;
        }
    }
    kept_ = true;
    cv_.notify_all();
}

pid_t shadow_process::pid() const {
    std::lock_guard lk(m_);
    return pid_;
}

unsigned shadow_process::restarts() const {
    std::lock_guard lk(m_);
    return restarts_;
}

shadow_process::~shadow_process() {
    if (::getpid() != owner_) {
        // A copy of this object in a forked process: the child and the
        // keeper thread are the original process's.
        if (keeper_.joinable()) keeper_.detach();
        return;
    }
    std::unique_lock lk(m_);
    stopping_ = true;
    if (pid_ > 0) ::kill(pid_, SIGTERM);
    cv_.notify_all();
    // Its own graceful stop, and a second more; then it is killed.
    auto deadline = std::chrono::steady_clock::now() + grace_ + std::chrono::seconds(1);
    if (!cv_.wait_until(lk, deadline, [this] { return kept_; })) {
        if (pid_ > 0) {
            log::warning(who_ + " (pid " + std::to_string(pid_) + ") did not stop; killing it");
            ::kill(pid_, SIGKILL);
        }
        cv_.wait(lk, [this] { return kept_; });
    }
    lk.unlock();
    if (keeper_.joinable()) keeper_.join();
    ::close(listen_fd_);
    ::close(notify_fd_);
}

} // namespace trestle::shadow
