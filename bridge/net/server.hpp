#pragma once
// Listeners, io threads and graceful shutdown. One io_context per io thread;
// each accepted connection lives on one of them for its whole life, so no
// strands are needed.
#include "bridge/net/server_context.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace trestle { class access_log; }
namespace trestle::sd { class notifier; }

namespace trestle::net {

class tls_provider;

// A --bind value that cannot be parsed (exit 2) or bound (exit 1).
struct bind_error : std::runtime_error {
    bind_error(const std::string& m, bool usage) : std::runtime_error(m), usage(usage) {}
    bool usage;
};

// SIGUSR1: reopens the access log file (logrotate). SIGQUIT: stops the
// process at once, exit 0 (no drain, Python not finalized). Both are also
// used by main after the drain, when the server's signal sets are gone.
void reopen_logs(access_log* access);
[[noreturn]] void quit_now(access_log* access, sd::notifier* notify);

// HOST:PORT, [V6]:PORT, :PORT, unix:/path or fd://N (an inherited
// listening socket: systemd's socket activation, or a parent's).
struct bind_spec {
    int fd = -1;   // fd://N
    bool is_unix = false;
    std::string host;   // or the unix path
    unsigned short port = 0;
};
// Throws bind_error(usage=true), naming `flag` (the option that gave `text`).
bind_spec parse_bind(const std::string& text, std::string_view flag = "--bind");

class server {
public:
    // Takes over the signals (TERM, INT, QUIT, HUP, USR1, USR2, TTIN, TTOU)
    // at once: one that comes before run() is handled when run() starts.
    server(server_context& ctx, std::size_t io_threads, int backlog);
    ~server();
    // Throws bind_error. With `tls`, the connections of these listeners
    // start with a TLS handshake, with its current context.
    // With `router`, the connections of these listeners are routed by it
    // instead of the server context's (--metrics-bind), and the listeners
    // are logged as "listening for `what` on ...". Errors name `flag`, the
    // option that gave `binds`.
    void listen(const std::vector<std::string>& binds, tls_provider* tls = nullptr,
                const router::mount_table* router = nullptr, const std::string& what = "",
                std::string_view flag = "--bind");
    // systemd's notify socket (may be disabled): run() sends READY=1 once it
    // serves, STOPPING=1 when a stop begins, and WATCHDOG=1 from io thread 0
    // (so a stuck io thread stops the pings).
    void set_notifier(sd::notifier* n) { notify_ = n; }
    // A worker process under a supervisor: `on_ready` runs once it serves;
    // SIGINT and a repeated SIGTERM are ignored (the supervisor escalates
    // with SIGQUIT), as are HUP, USR2, TTIN and TTOU; listeners are logged
    // at debug (the supervisor logs them once); and each wakeup accepts
    // one connection, so the workers share a burst.
    void set_supervised(std::function<void()> on_ready);
    // Without a supervisor, SIGHUP reloads these certificates (with one,
    // HUP replaces the workers, which load them afresh).
    void set_tls_reload(tls_provider* tls) { tls_reload_ = tls; }
    // SIGTERM/SIGINT first fail readiness and keep serving this long, so a
    // load balancer stops sending before connections close; then the drain.
    void set_drain_delay(std::chrono::milliseconds d) { drain_delay_ = d; }
    // Serves until SIGINT/SIGTERM, then drains for up to `graceful`.
    // Returns true if every connection finished in time.
    bool run(std::chrono::milliseconds graceful);
    // Connections open now (any thread).
    std::size_t connections() const;
    // After run(): whether a second signal cut the drain short, and when the
    // graceful period of the first one ends (main bounds the rest of the
    // shutdown by it).
    bool interrupted() const { return interrupted_; }
    std::chrono::steady_clock::time_point graceful_deadline() const { return graceful_deadline_; }

private:
    sd::notifier* notify_ = nullptr;
    std::function<void()> on_ready_;
    tls_provider* tls_reload_ = nullptr;
    std::chrono::milliseconds drain_delay_{0};
    bool interrupted_ = false;
    std::chrono::steady_clock::time_point graceful_deadline_{};
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace trestle::net
