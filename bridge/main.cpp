// trestle: serve a Python web app (WSGI on the thread pool, ASGI on the
// loop), in this process or, under a supervisor, in worker processes.
#include "bridge/config/options.hpp"
#include "bridge/net/inherited_fds.hpp"
#include "bridge/net/listen_socket.hpp"
#include "bridge/net/server.hpp"
#include "bridge/net/tls_context.hpp"
#include "bridge/observability/access_log.hpp"
#include "bridge/observability/log.hpp"
#include "bridge/observability/metrics.hpp"
#include "bridge/observability/metrics_shared.hpp"
#include "bridge/observability/sd_notify.hpp"
#include "bridge/supervisor/process.hpp"
#include "bridge/supervisor/supervisor.hpp"
#include "bridge/supervisor/worker.hpp"

#include <Python.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <unistd.h>

using namespace trestle;

namespace {

// A binary upgrade (SIGUSR2): the old supervisor passed its listeners as
// descriptors 3.. and a pipe to say "serving" on. Read once, then unset.
struct upgrade_handoff {
    int listeners = 0;
    int ready_fd = -1;
};

upgrade_handoff take_upgrade_handoff() {
    upgrade_handoff h;
    const char* n = std::getenv("TRESTLE_UPGRADE_FDS");
    const char* r = std::getenv("TRESTLE_UPGRADE_READY_FD");
    if (n && r) {
        h.listeners = std::atoi(n);
        h.ready_fd = std::atoi(r);
        net::set_cloexec(h.ready_fd);
        for (int i = 0; i < h.listeners; ++i) net::set_cloexec(net::listen_fds_start + i);
    }
    ::unsetenv("TRESTLE_UPGRADE_FDS");
    ::unsetenv("TRESTLE_UPGRADE_READY_FD");
    return h;
}

// Every listener has its place in one order: --bind's (TLS ones with
// --certfile), then --insecure-bind's, then --metrics-bind's. The supervisor
// opens them in it, and hands them on in it as fd://N: to its workers, and
// to its successor in a binary upgrade.
struct listener_order {
    std::size_t secure = 0;   // where --bind's end
    std::size_t plain = 0;    // where --insecure-bind's end; --metrics-bind's follow

    explicit listener_order(const options& o)
        : secure(o.binds.size()), plain(o.binds.size() + o.insecure_binds.size()) {}
    listener_order(std::size_t secure, std::size_t plain) : secure(secure), plain(plain) {}

    static std::vector<std::string> all(const options& o) {
        std::vector<std::string> v = o.binds;
        v.insert(v.end(), o.insecure_binds.begin(), o.insecure_binds.end());
        v.insert(v.end(), o.metrics_binds.begin(), o.metrics_binds.end());
        return v;
    }
    // The option that gave listener i, for its error messages.
    const char* flag(std::size_t i) const {
        return i < secure ? "--bind" : i < plain ? "--insecure-bind" : "--metrics-bind";
    }
    bool metrics(std::size_t i) const { return i >= plain; }
    // The three lists again, as fd://N of these descriptors.
    void assign(options& o, const std::vector<int>& fds) const {
        o.binds.clear();
        o.insecure_binds.clear();
        o.metrics_binds.clear();
        for (std::size_t i = 0; i < fds.size(); ++i)
            (i < secure ? o.binds : i < plain ? o.insecure_binds : o.metrics_binds)
                .push_back("fd://" + std::to_string(fds[i]));
    }
};

// The listeners the workers share: inherited ones as they are, the others
// bound here, once.
std::vector<net::listener> open_listeners(const options& opt) {
    std::vector<net::listener> out;
    const listener_order order(opt);
    const std::vector<std::string> all = listener_order::all(opt);
    try {
        for (auto& b : all) {
            const std::size_t i = out.size();
            net::bind_spec spec = net::parse_bind(b, order.flag(i));
            net::listener l;
            bool tls = opt.tls.enabled() && i < order.secure;
            const char* what = order.metrics(i) ? "listening for metrics on " : "listening on ";
            auto shown = [tls](std::string text) {
                if (tls && text.starts_with("http://")) text.insert(4, "s");
                else if (tls) text += " (TLS)";
                return text;
            };
            if (spec.fd >= 0) {
                l.fd = spec.fd;
                l.shown = net::describe_listener(spec.fd);
                log::info(what + shown(l.shown) + " (inherited fd " + std::to_string(spec.fd) + ")");
            } else {
                l = net::open_listener(b, opt.backlog, order.flag(i));
                log::info(what + shown(l.shown));
            }
            out.push_back(std::move(l));
        }
    } catch (const net::bind_error& e) {
        std::fprintf(stderr, "trestle: error: %s\n", e.what());
        std::fflush(stderr);
        ::_exit(e.usage ? 2 : 1);
    }
    return out;
}

int supervise(options& opt, int argc, char** argv, const upgrade_handoff& up) {
    // Checked once here, rather than as every worker's boot failure.
    if (opt.access_log) {
        try {
            access_log probe(*opt.access_log, opt.access_log_format);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "trestle: error: %s\n", e.what());
            return 2;
        }
    }
    sd::notifier notify;
    notify.from_environment();

    supervisor::settings s;
    s.workers = opt.workers;
    s.graceful = opt.graceful_timeout + opt.drain_delay;   // a worker's stop: the delay, then the drain
    s.boot_timeout = opt.startup_timeout + std::chrono::seconds(60);
    s.max_rss_bytes = opt.max_rss_mb << 20;
    s.reload = opt.reload;
    s.config_file = opt.config_file;
    s.preloaded = opt.preload;
    s.program = supervisor::program_path(argv[0]);
    s.argv.assign(argv, argv + argc);
    s.listeners = open_listeners(opt);
    s.upgrade_ready_fd = up.ready_fd;
    // The workers' metrics, summed by whichever worker answers a scrape:
    // laid out for the mounts every worker's registry has (the requests no
    // mount took, each mount, the metrics, health and dashboard endpoints).
    static metrics::shared_table shared_metrics;
    if (!opt.metrics_path.empty() || !opt.dashboard_path.empty()) {
        // As the worker numbers them: the unmatched row, each mount (an app
        // mount's flask-async row too), then the metrics, health and
        // dashboard endpoints that are on.
        std::size_t apps = std::count_if(opt.mounts.begin(), opt.mounts.end(),
                                         [](const mount_spec& m) { return m.type == mount_spec::kind::app; });
        std::size_t mounts = 1 + opt.mounts.size() + apps + !opt.metrics_path.empty() + !opt.health_path.empty() +
                             !opt.dashboard_path.empty();
        if (shared_metrics.create(metrics::registry::counters_for(mounts))) {
            shared_metrics.set_levels(metrics::registry::level_fields(mounts));
            s.metrics = &shared_metrics;
        }
        else log::warning("metrics: no shared memory for the workers' table; each worker answers for itself");
    }
    // The workers get them as fd://N, in their places (listener_order).
    const listener_order order(opt);
    std::vector<int> listener_fds;
    for (auto& l : s.listeners) listener_fds.push_back(l.fd);
    if (opt.reload) {
        // The app's directory, as --chdir names it (the supervisor itself
        // does not move: a worker re-reads a relative --config from here).
        namespace fs = std::filesystem;
        std::error_code ec;
        s.watch_dirs = opt.reload_dirs;
        if (s.watch_dirs.empty()) s.watch_dirs.push_back(opt.chdir.empty() ? fs::current_path(ec).string() : opt.chdir);
    }

    supervisor::fork_hooks hooks;
    supervisor::apps_ptr preloaded;
    if (opt.preload) {
        // gunicorn's --preload: imported once, here; each worker is forked
        // with the imports done (copy-on-write), and runs the rest.
        preloaded = supervisor::load_apps(opt);
        hooks.before = [] { PyOS_BeforeFork(); };
        hooks.parent = [] { PyOS_AfterFork_Parent(); };
        hooks.child = [] { PyOS_AfterFork_Child(); };
    }
    auto worker_main = [&](int link, unsigned number) -> int {
        log::set_tag("worker " + std::to_string(number));
        sd::notifier none;
        supervisor::serve_role role{true, link};
        if (preloaded) {
            options wopt = opt;
            order.assign(wopt, listener_fds);
            return supervisor::serve(wopt, std::move(preloaded), none, role);
        }
        // Each new worker reads the settings again (the config file and the
        // environment), so a reload applies what changed there, except what
        // the supervisor owns: the listeners and the worker count.
        options wopt = parse_options(argc, argv);
        order.assign(wopt, listener_fds);
        return supervisor::serve(wopt, nullptr, none, role);
    };
    log::set_tag("supervisor");
    int rc = supervisor::run(std::move(s), notify, worker_main, hooks);
    std::fflush(nullptr);
    // With --preload the supervisor's Python is not finalized: its state
    // was the workers' starting point, nothing of it needs to run now.
    ::_exit(rc);
}

} // namespace

int main(int argc, char** argv) {
    options opt = parse_options(argc, argv);
    log::set_level(opt.log_level);
    if (std::string why; !opt.error_log.empty() && opt.error_log != "-" && !log::redirect_stderr(opt.error_log, why)) {
        std::fprintf(stderr, "trestle: error: %s\n", why.c_str());
        return 2;
    }
    std::signal(SIGPIPE, SIG_IGN);
    supervisor::quiet_signals_outside_run();   // a HUP while the apps import must not kill the server

    upgrade_handoff up = take_upgrade_handoff();
    if (up.listeners > 0) {
        // The listeners of the supervisor this one replaces, in their places
        // (listener_order); all as --bind's if the lists changed in number.
        auto count = static_cast<std::size_t>(up.listeners);
        bool same = listener_order::all(opt).size() == count;
        std::vector<int> fds;
        for (std::size_t i = 0; i < count; ++i) fds.push_back(net::listen_fds_start + static_cast<int>(i));
        (same ? listener_order(opt) : listener_order(count, count)).assign(opt, fds);
        opt.binds_defaulted = false;
    }

    // systemd's socket activation: its sockets replace the default bind (an
    // explicit --bind wins, and may name them as fd://N).
    auto inherited = net::take_listen_fds();
    if (!inherited.empty() && opt.binds_defaulted) {
        opt.binds.clear();
        std::string list;
        for (auto& s : inherited) {
            opt.binds.push_back("fd://" + std::to_string(s.fd));
            list += (list.empty() ? " fd " : ", fd ") + std::to_string(s.fd) + (s.name.empty() ? "" : " (" + s.name + ")");
        }
        log::info("socket activation: serving on " + std::to_string(inherited.size()) + " socket(s) from systemd:" + list);
    } else if (!inherited.empty()) {
        log::info("socket activation: --bind given, so the " + std::to_string(inherited.size()) +
                  " socket(s) from systemd serve only where --bind names them (fd://N)");
    }

    // The certificate and key are checked here too, once, before any
    // worker: a wrong path is a usage error, not a worker that cannot boot.
    if (opt.tls.enabled()) {
        net::make_shared_ticket_keys();
        std::string why;
        if (!net::tls_context::load(opt.tls, why)) {
            std::fprintf(stderr, "trestle: error: %s\n", why.c_str());
            return 2;
        }
    }

    // Bind addresses are checked before Python starts: a typo costs no import.
    std::vector<int> fds_named;
    const listener_order order(opt);
    const std::vector<std::string> all_binds = listener_order::all(opt);
    for (std::size_t i = 0; i < all_binds.size(); ++i) {
        const std::string& b = all_binds[i];
        const std::string named = order.flag(i) + (" " + b);
        try {
            net::bind_spec spec = net::parse_bind(b, order.flag(i));
            if (spec.fd >= 0) {
                if (std::find(fds_named.begin(), fds_named.end(), spec.fd) != fds_named.end())
                    throw net::bind_error(named + ": named twice", true);
                fds_named.push_back(spec.fd);
                if (std::string why = net::check_listener(spec.fd); !why.empty())
                    throw net::bind_error(named + ": " + why, true);
                net::set_cloexec(spec.fd);   // one thread yet: see inherited_fds.hpp
            }
        } catch (const net::bind_error& e) {
            std::fprintf(stderr, "trestle: error: %s\n", e.what());
            return 2;
        }
    }

    if (!opt.access_log && opt.access_log_format != "combined")   // once, not once per worker
        // Likely a TRESTLE_ACCESS_LOG_FORMAT meant for a log that is not on.
        log::warning("--access-log-format is set, but there is no access log (--access-log FILE)");

    if (opt.supervised() || up.listeners > 0) return supervise(opt, argc, argv, up);
    sd::notifier notify;
    notify.from_environment();
    return supervisor::serve(opt, nullptr, notify, {});
}
