#include "bridge/net/server.hpp"

#include "bridge/net/inherited_fds.hpp"
#include "bridge/net/listen_socket.hpp"
#include "bridge/net/session.hpp"
#include "bridge/net/tls_context.hpp"
#include "bridge/observability/access_log.hpp"
#include "bridge/observability/log.hpp"
#include "bridge/observability/sd_notify.hpp"
#include "bridge/runtime/scheduling.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <sys/socket.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace trestle::net {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

bind_spec parse_bind(const std::string& text, std::string_view flag) {
    const std::string named = std::string(flag) + " " + text;
    bind_spec b;
    if (text.rfind("fd://", 0) == 0) {
        std::string n = text.substr(5);
        unsigned value = 0;
        auto [p, ec] = std::from_chars(n.data(), n.data() + n.size(), value);
        if (n.empty() || ec != std::errc{} || p != n.data() + n.size() || value > 1 << 20)
            throw bind_error(named + ": expected fd://N, N a descriptor number", true);
        b.fd = static_cast<int>(value);
        return b;
    }
    if (text.rfind("unix:", 0) == 0) {
        b.is_unix = true;
        b.host = text.substr(5);
        if (b.host.empty()) throw bind_error(named + ": empty unix socket path", true);
        return b;
    }
    std::string port;
    if (!text.empty() && text[0] == '[') {
        auto close = text.find(']');
        if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
            throw bind_error(named + ": expected [IPv6]:PORT", true);
        b.host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        auto colon = text.rfind(':');
        if (colon == std::string::npos) throw bind_error(named + ": expected HOST:PORT or unix:/path", true);
        b.host = text.substr(0, colon);
        port = text.substr(colon + 1);
        if (b.host.empty()) b.host = "0.0.0.0";
    }
    unsigned value = 0;
    auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc{} || p != port.data() + port.size() || port.empty() || value > 65535)
        throw bind_error(named + ": bad port '" + port + "'", true);
    b.port = static_cast<unsigned short>(value);
    return b;
}

namespace {

struct io_worker {
    asio::io_context ioc{1};
    session_registry registry{ioc.get_executor()};
    std::thread thread;
};

asio::awaitable<void> run_session(generic_socket sock, endpoint_info ep, std::shared_ptr<tls_context> tls,
                                  server_context& ctx, session_registry& reg, std::atomic<std::size_t>& live) {
    ++live;
    if (ctx.shared_load) ctx.shared_load->fetch_add(1, std::memory_order_relaxed);
    struct on_exit {
        std::atomic<std::size_t>& live;
        std::atomic<std::int32_t>* shared;
        ~on_exit() {
            --live;
            if (shared) shared->fetch_sub(1, std::memory_order_relaxed);
        }
    } guard{live, ctx.shared_load};
    auto s = std::make_shared<session>(std::move(sock), std::move(ep), std::move(tls), ctx, reg);
    co_await s->run();
}

void log_exception(std::exception_ptr e) {
    if (!e) return;
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        log::error(std::string("connection failed: ") + ex.what());
    }
}

} // namespace

void reopen_logs(access_log* access) {
    // Without --error-log the error log is stderr, which the process does
    // not own (systemd's journal, or the shell's redirection): nothing to
    // reopen there.
    std::string why;
    if (log::has_error_log_file()) {
        if (log::reopen_error_log(why)) log::info("received SIGUSR1: error log reopened");
        else log::error("received SIGUSR1: " + why);
    }
    if (!access || !access->to_file()) {
        if (!log::has_error_log_file()) log::info("received SIGUSR1: no log file to reopen (logs go to stderr)");
    } else if (access->reopen(why)) {
        log::info("received SIGUSR1: access log reopened");
    } else {
        log::error("received SIGUSR1: " + why);
    }
}

void quit_now(access_log* access, sd::notifier* notify) {
    log::info("received SIGQUIT: stopping now, without a drain");
    if (notify) notify->send("STOPPING=1\nSTATUS=stopping now (SIGQUIT)");
    if (access) access->flush();
    std::fflush(stderr);
    ::_exit(0);
}

struct server::impl {
    impl(server_context& c, int b) : ctx(c), backlog(b) {}
    server_context& ctx;
    int backlog;
    bool supervised = false;   // a worker process: see server::set_supervised
    bool announce = true;   // log each listener at info (a worker under a supervisor: at debug)
    std::size_t accept_batch = 0;   // connections taken per wakeup; 0: all that are pending
    int deferred_ms = 0;            // leave_to_another_worker's wait so far (io thread 0 only)
    std::chrono::steady_clock::time_point last_full_warning{};   // wait_for_room (io thread 0 only)
    std::vector<std::unique_ptr<io_worker>> workers;
    // What a listener gives its connections: TLS (null: plain HTTP), and a
    // mount table of their own (null: the server context's).
    struct role {
        tls_provider* tls = nullptr;
        const router::mount_table* router = nullptr;
    };
    std::vector<std::pair<std::unique_ptr<tcp::acceptor>, role>> tcp_acceptors;
    std::vector<std::pair<std::unique_ptr<asio::local::stream_protocol::acceptor>, role>> unix_acceptors;
    std::vector<std::string> unix_paths;
    std::atomic<std::size_t> live{0};
    std::size_t next = 0;
    // The main thread's context for signals and the drain. The signal sets
    // exist from the server's construction, before main logs that it serves:
    // a signal that comes before run() waits in them instead of being lost
    // (or, for TERM, ending the process without a drain).
    asio::io_context control{1};
    std::unique_ptr<asio::signal_set> signals, others;

    io_worker& pick() { return *workers[next++ % workers.size()]; }

    void spawn(generic_socket sock, endpoint_info ep, std::shared_ptr<tls_context> tls, io_worker& w) {
        asio::co_spawn(w.ioc, run_session(std::move(sock), std::move(ep), std::move(tls), ctx, w.registry, live),
                       log_exception);
    }

    // Accepts forever on one listener. `adopt` turns a new socket into the
    // generic socket a session runs on, filling in the endpoint facts.
    // accept4(SOCK_CLOEXEC) rather than Asio's accept(), whose socket a fork
    // in another thread could inherit before the flag is set: the loop waits
    // for the (non-blocking) listener to be readable and takes every pending
    // connection. The wait cannot miss one: Asio re-arms the descriptor when
    // the wait starts, so a listener already readable completes it at once.
    template <class Acceptor, class Adopt>
    asio::awaitable<void> accept_loop(Acceptor& acc, role r, Adopt adopt) {
        error_code ec;
        acc.non_blocking(true, ec);
        auto protocol = acc.local_endpoint(ec).protocol();
        for (;;) {
            auto [wec] = co_await acc.async_wait(Acceptor::wait_read, use_tuple);
            if (wec == asio::error::operation_aborted || !acc.is_open()) co_return;
            if (!co_await wait_for_room(acc)) co_return;
            if (co_await leave_to_another_worker(acc)) continue;
            // The sessions count themselves in `live` once they start, so the
            // room is measured once per batch.
            std::size_t room = ctx.max_connections == 0 ? SIZE_MAX : ctx.max_connections - std::min(ctx.max_connections, live.load());
            for (std::size_t taken = 0; (accept_batch == 0 || taken < accept_batch) && taken < room; ++taken) {
                int fd = ::accept4(acc.native_handle(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (fd < 0) {
                    int err = errno;
                    if (err == EINTR || err == ECONNABORTED) continue;
                    if (err == EAGAIN || err == EWOULDBLOCK) break;
                    // EMFILE and friends: back off instead of spinning.
                    log::warning("accept failed: " + error_code(err, boost::system::system_category()).message());
                    asio::steady_timer t(acc.get_executor(), std::chrono::milliseconds(100));
                    co_await t.async_wait(use_tuple);
                    break;
                }
                io_worker& w = pick();
                typename Acceptor::protocol_type::socket sock(w.ioc);
                sock.assign(protocol, fd, ec);
                if (ec) {
                    ::close(fd);
                    continue;
                }
                endpoint_info ep;
                asio::any_io_executor ex = w.ioc.get_executor();
                generic_socket gs = adopt(sock, ep, ex);
                ep.router = r.router;
                spawn(std::move(gs), std::move(ep), r.tls ? r.tls->current() : nullptr, w);
            }
        }
    }

    // --worker-connections: at the cap, new connections are left in the
    // listen backlog (where another worker process may take them) until one
    // of this process's connections closes, looked at every 5 ms. False once
    // the listener has closed (graceful stop).
    template <class Acceptor>
    asio::awaitable<bool> wait_for_room(Acceptor& acc) {
        if (ctx.max_connections == 0 || live.load() < ctx.max_connections) co_return true;
        auto now = std::chrono::steady_clock::now();
        if (now - last_full_warning >= std::chrono::seconds(10)) {
            last_full_warning = now;
            log::warning(std::to_string(live.load()) + " connections open, the --worker-connections limit: " +
                         "new connections wait in the listen backlog");
        }
        asio::steady_timer t(acc.get_executor());
        while (live.load() >= ctx.max_connections) {
            t.expires_after(std::chrono::milliseconds(5));
            co_await t.async_wait(use_tuple);
            if (!acc.is_open()) co_return false;
        }
        co_return true;
    }

    // Under a supervisor: when this worker holds clearly more connections
    // than the least loaded other one, a new connection is left for up to
    // 5 ms, in 1 ms steps, for that worker to take (every worker is woken
    // for it; the busier one is usually the one awake). Then it is taken
    // anyway: a busy or stuck worker must not leave it waiting.
    template <class Acceptor>
    asio::awaitable<bool> leave_to_another_worker(Acceptor& acc) {
        if (!ctx.shared_load || !ctx.least_other_load) co_return false;
        if (deferred_ms >= 5) {
            deferred_ms = 0;
            co_return false;
        }
        std::int32_t mine = ctx.shared_load->load(std::memory_order_relaxed);
        std::int32_t least = ctx.least_other_load();
        if (least < 0 || mine <= least + 1 + least / 16) {
            deferred_ms = 0;
            co_return false;
        }
        ++deferred_ms;
        asio::steady_timer t(acc.get_executor(), std::chrono::milliseconds(1));
        co_await t.async_wait(use_tuple);
        co_return true;
    }

    template <class Socket>
    static generic_socket adopt_tcp(Socket& sock, endpoint_info& ep, asio::any_io_executor ex) {
        error_code ignored;
        sock.set_option(tcp::no_delay(true), ignored);
        auto remote = sock.remote_endpoint(ignored);
        auto local = sock.local_endpoint(ignored);
        ep.remote_addr = remote.address().to_string();
        ep.remote_port = std::to_string(remote.port());
        ep.peer_addr = ep.remote_addr;
        ep.server_name = local.address().to_string();
        ep.server_port = std::to_string(local.port());
        int family = remote.address().is_v6() ? AF_INET6 : AF_INET;
        return generic_socket(ex, asio::generic::stream_protocol(family, IPPROTO_TCP), sock.release(ignored));
    }

    template <class Socket>
    static generic_socket adopt_unix(Socket& sock, endpoint_info& ep, asio::any_io_executor ex) {
        error_code ignored;
        ep.is_unix = true;
        ep.server_name = "localhost";
        ep.server_port = "0";
        return generic_socket(ex, asio::generic::stream_protocol(AF_UNIX, 0), sock.release(ignored));
    }

    // Serves on a listening descriptor: one given to this process (fd://N:
    // systemd's, or its supervisor's), or one listen_one just opened. Only
    // a unix socket this process made is unlinked when the server stops.
    void adopt_listener(const std::string& text, int fd, const listener* own, role r, const std::string& what,
                        std::string_view flag) {
        tls_provider* tls = r.tls;
        const std::string named = std::string(flag) + " " + text;
        if (std::string why = check_listener(fd); !why.empty())
            throw bind_error(named + ": " + why, true);
        auto& ioc = workers.front()->ioc;
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
        error_code ec;
        if (ss.ss_family == AF_UNIX) {
            auto acc = std::make_unique<asio::local::stream_protocol::acceptor>(ioc);
            acc->assign(asio::local::stream_protocol(), fd, ec);
            if (ec) throw bind_error(named + ": " + ec.message(), true);
            unix_acceptors.emplace_back(std::move(acc), r);
            if (own && !own->unix_path.empty()) unix_paths.push_back(own->unix_path);
        } else {
            auto acc = std::make_unique<tcp::acceptor>(ioc);
            acc->assign(ss.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), fd, ec);
            if (ec) throw bind_error(named + ": " + ec.message(), true);
            tcp_acceptors.emplace_back(std::move(acc), r);
        }
        std::string shown = describe_listener(fd);
        if (tls && shown.starts_with("http://")) shown.insert(4, "s");
        else if (tls) shown += " (TLS)";
        std::string line = "listening " + (what.empty() ? "" : "for " + what + " ") + "on " + shown +
                           (own ? "" : " (inherited fd " + std::to_string(fd) + ")");
        if (announce) log::info(line);
        else log::debug(line);
    }

    void listen_one(const std::string& text, role r, const std::string& what, std::string_view flag) {
        bind_spec b = parse_bind(text, flag);
        if (b.fd >= 0) return adopt_listener(text, b.fd, nullptr, r, what, flag);
        listener l = open_listener(text, backlog, flag);
        try {
            adopt_listener(text, l.fd, &l, r, what, flag);
        } catch (...) {
            ::close(l.fd);
            throw;
        }
    }

    void close_acceptors() {
        error_code ec;
        for (auto& a : tcp_acceptors) a.first->close(ec);
        for (auto& a : unix_acceptors) a.first->close(ec);
        for (auto& p : unix_paths) ::unlink(p.c_str());
    }
};

server::server(server_context& ctx, std::size_t io_threads, int backlog)
    : impl_(std::make_unique<impl>(ctx, backlog)) {
    impl_->signals = std::make_unique<asio::signal_set>(impl_->control, SIGINT, SIGTERM);
    impl_->others = std::make_unique<asio::signal_set>(impl_->control, SIGHUP, SIGUSR1, SIGUSR2);
    impl_->others->add(SIGQUIT);
    impl_->others->add(SIGTTIN);
    impl_->others->add(SIGTTOU);
    for (std::size_t i = 0; i < io_threads; ++i) impl_->workers.push_back(std::make_unique<io_worker>());
}

server::~server() = default;

void server::set_supervised(std::function<void()> on_ready) {
    impl_->supervised = true;
    impl_->announce = false;
    // Several processes wait on one shared listener and all wake for a new
    // connection; taking one per wakeup leaves the next to another process,
    // so a burst spreads over the workers instead of going to whichever
    // woke first (see docs/architecture.md, "Worker processes").
    impl_->accept_batch = 1;
    on_ready_ = std::move(on_ready);
}

void server::listen(const std::vector<std::string>& binds, tls_provider* tls, const router::mount_table* router,
                    const std::string& what, std::string_view flag) {
    for (auto& b : binds) impl_->listen_one(b, {tls, router}, what, flag);
}

std::size_t server::connections() const { return impl_->live.load(std::memory_order_relaxed); }

bool server::run(std::chrono::milliseconds graceful) {
    auto& im = *impl_;
    auto& io0 = im.workers.front()->ioc;
    for (auto& [a, r] : im.tcp_acceptors)
        asio::co_spawn(io0, im.accept_loop(*a, r, [](auto&... args) { return impl::adopt_tcp(args...); }), log_exception);
    for (auto& [a, r] : im.unix_acceptors)
        asio::co_spawn(io0, im.accept_loop(*a, r, [](auto&... args) { return impl::adopt_unix(args...); }), log_exception);
    for (std::size_t i = 0; i < im.workers.size(); ++i) {
        auto& w = im.workers[i];
        w->registry.start();
        w->thread = std::thread([&ioc = w->ioc, i] {
            runtime::set_batch_scheduling();
            runtime::set_thread_name(("trestle-io" + std::to_string(i)).c_str());
            auto guard = asio::make_work_guard(ioc);
            ioc.run();
        });
    }

    // The watchdog pings come from io thread 0, not the main thread: if that
    // thread stops turning, systemd notices.
    std::unique_ptr<asio::steady_timer> watchdog;
    std::function<void()> ping;
    if (notify_ && notify_->enabled() && notify_->watchdog_interval().count() > 0) {
        watchdog = std::make_unique<asio::steady_timer>(io0);
        ping = [&, interval = notify_->watchdog_interval()] {
            notify_->send("WATCHDOG=1");
            watchdog->expires_after(interval);
            watchdog->async_wait([&](error_code ec) {
                if (!ec) ping();
            });
        };
        asio::post(io0, [&] { ping(); });
    }

    // The main thread only waits for signals and supervises the drain.
    auto& control = im.control;
    auto& signals = *im.signals;
    asio::steady_timer poll(control);
    bool clean = true;
    int signals_seen = 0;
    std::chrono::steady_clock::time_point deadline;

    std::function<void()> watch_drain = [&] {
        poll.expires_after(std::chrono::milliseconds(20));
        poll.async_wait([&](error_code ec) {
            if (ec) return;
            if (im.live.load() == 0) {
                control.stop();
                return;
            }
            if (std::chrono::steady_clock::now() >= deadline) {
                log::warning("graceful timeout: closing " + std::to_string(im.live.load()) + " connection(s)");
                clean = false;
                control.stop();
                return;
            }
            for (auto& w : im.workers) asio::post(w->ioc, [&reg = w->registry] { reg.close_idle(); });
            watch_drain();
        });
    };
    // The drain: no new connections, idle ones closed, the rest given until
    // --graceful-timeout.
    asio::steady_timer delay(control);
    std::function<void()> begin_drain = [&] {
        im.ctx.draining = true;
        if (im.ctx.shared_load) im.ctx.shared_load->fetch_add(1 << 30, std::memory_order_relaxed);   // never the least loaded now
        deadline = std::chrono::steady_clock::now() + graceful;
        asio::post(io0, [&im] { im.close_acceptors(); });
        for (auto& w : im.workers) asio::post(w->ioc, [&reg = w->registry] { reg.close_idle(); });
        watch_drain();
    };
    std::function<void()> wait_signal = [&] {
        signals.async_wait([&](error_code ec, int sig) {
            if (ec) return;
            // A worker stops when its supervisor says so (TERM), and stops
            // at once on QUIT. A terminal's Ctrl-C reaches the whole process
            // group: the supervisor turns it into TERM, so the worker's own
            // SIGINT is ignored, and so is a repeated TERM (systemd's default
            // KillMode signals every process of the unit as well).
            if (im.supervised && (sig == SIGINT || signals_seen > 0)) {
                log::debug(std::string("received ") + (sig == SIGINT ? "SIGINT" : "SIGTERM") + ": ignored (the supervisor decides)");
                wait_signal();
                return;
            }
            if (++signals_seen > 1) {
                log::warning("second signal: stopping now");
                clean = false;
                control.stop();
                return;
            }
            log::info(std::string("received ") + (sig == SIGINT ? "SIGINT" : "SIGTERM") +
                      ", shutting down gracefully" +
                      (drain_delay_.count() > 0 ? " after --drain-delay (serving meanwhile, readiness failing)" : ""));
            if (notify_) notify_->send("STOPPING=1\nSTATUS=draining " + std::to_string(im.live.load()) + " connection(s)");
            im.ctx.unready = true;
            if (drain_delay_.count() > 0) {
                delay.expires_after(drain_delay_);
                delay.async_wait([&](error_code ec) {
                    if (!ec) begin_drain();
                });
            } else {
                begin_drain();
            }
            wait_signal();
        });
    };
    wait_signal();
    // The rest of gunicorn's signal set. With one process and no supervisor
    // there is no worker to reload, add or remove: those signals are logged
    // and ignored rather than left to their default action (which ends the
    // process without a drain).
    auto& others = *im.others;
    std::function<void()> wait_other = [&] {
        others.async_wait([&](error_code ec, int sig) {
            if (ec) return;
            if (im.supervised && sig != SIGUSR1 && sig != SIGQUIT) {
                log::debug("received signal " + std::to_string(sig) + ": the supervisor handles it; ignored");
                wait_other();
                return;
            }
            switch (sig) {
            case SIGUSR1:
                reopen_logs(im.ctx.access);
                break;
            case SIGHUP:
                if (tls_reload_) {
                    // Connections already open keep the context they began with.
                    std::string why;
                    if (tls_reload_->reload(why)) log::info("received SIGHUP: TLS certificate and key reloaded; new connections use them");
                    else log::error("received SIGHUP: TLS not reloaded, still serving the old certificate: " + why);
                }
                log::warning("received SIGHUP: a reload replaces worker processes, and this one runs "
                             "without them (start with --workers N to reload); still serving the code already loaded");
                break;
            case SIGUSR2:
                log::warning("received SIGUSR2: a binary upgrade needs a supervisor, and this process runs "
                             "without one (start with --workers N); still serving");
                break;
            case SIGTTIN:
            case SIGTTOU:
                log::info(std::string("received ") + (sig == SIGTTIN ? "SIGTTIN" : "SIGTTOU") +
                          ": one process, no workers to add or remove; ignored");
                break;
            case SIGQUIT:
                // gunicorn's quick shutdown: no drain, exit 0.
                quit_now(im.ctx.access, notify_);
            }
            wait_other();
        });
    };
    wait_other();
    // The access log is buffered; the main thread flushes it once a second.
    asio::steady_timer flush_timer(control);
    std::function<void()> flush_access = [&] {
        flush_timer.expires_after(std::chrono::seconds(1));
        flush_timer.async_wait([&](error_code ec) {
            if (ec) return;
            if (im.ctx.access) im.ctx.access->flush();
            flush_access();
        });
    };
    flush_access();
    // Ready once every signal is handled: systemd may send TERM or HUP as
    // soon as it reads this.
    if (on_ready_) on_ready_();
    if (notify_) {
        std::size_t n = im.tcp_acceptors.size() + im.unix_acceptors.size();
        notify_->send("READY=1\nSTATUS=serving on " + std::to_string(n) + " listener(s)\nMAINPID=" +
                      std::to_string(::getpid()));
    }
    control.run();
    // Asio puts the signals back to their default; main installs its own.
    im.signals.reset();
    im.others.reset();
    interrupted_ = signals_seen > 1;
    graceful_deadline_ = deadline;

    for (auto& w : im.workers)
        asio::post(w->ioc, [&reg = w->registry] {
            reg.close_all();
            reg.stop();
        });
    asio::post(io0, [&im] { im.close_acceptors(); });
    // Let the sessions unwind (their coroutines see the closed sockets), then stop.
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
    while (im.live.load() > 0 && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    for (auto& w : im.workers) w->ioc.stop();
    for (auto& w : im.workers)
        if (w->thread.joinable()) w->thread.join();
    watchdog.reset();   // io0 no longer runs: its handler cannot be racing this
    return clean;
}

} // namespace trestle::net
