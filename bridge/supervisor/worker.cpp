// One server process; see worker.hpp.
#include "bridge/supervisor/worker.hpp"

#include "adapters/asgi/asgi_handler.hpp"
#include "adapters/proxy/proxy_handler.hpp"
#include "adapters/shadow/shadow_handler.hpp"
#include "adapters/shadow/shadow_process.hpp"
#include "adapters/static/static_handler.hpp"
#include "adapters/wsgi/wsgi_handler.hpp"
#include "bridge/net/server.hpp"
#include "bridge/net/tls_context.hpp"
#include "bridge/observability/access_log.hpp"
#include "bridge/observability/dashboard_endpoint.hpp"
#include "bridge/observability/health_endpoint.hpp"
#include "bridge/observability/log.hpp"
#include "bridge/observability/metrics.hpp"
#include "bridge/observability/metrics_endpoint.hpp"
#include "bridge/observability/metrics_shared.hpp"
#include "bridge/observability/sd_notify.hpp"
#include "bridge/python/app_loader.hpp"
#include "bridge/python/interpreter.hpp"
#include "bridge/router/mount_table.hpp"
#include "bridge/runtime/scheduling.hpp"
#include "bridge/runtime/loop_thread.hpp"
#include "bridge/runtime/request_watchdog.hpp"
#include "bridge/runtime/thread_pool.hpp"
#include "bridge/supervisor/load_table.hpp"
#include "bridge/supervisor/worker_link.hpp"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <memory>
#include <optional>
#include <pthread.h>
#include <random>
#include <signal.h>
#include <unistd.h>

namespace trestle::supervisor {
namespace {

// trestle._asgi.NAME(args...), GIL held. Null with the exception set.
py::ref call_asgi_helper(const char* name, py::borrowed a, py::borrowed b = nullptr, py::borrowed c = nullptr) {
    py::ref mod = py::ref::steal(PyImport_ImportModule("trestle._asgi"));
    py::ref fn = py::ref::steal(mod ? PyObject_GetAttrString(mod.get(), name) : nullptr);
    return py::ref::steal(fn ? PyObject_CallFunctionObjArgs(fn.get(), a.get(), b.get(), c.get(), nullptr) : nullptr);
}

// The least time the steps after the drain get, however long the drain took.
constexpr std::chrono::seconds kCleanupFloor{2};

// After the drain, SIGINT/SIGTERM end the process at once (async-signal-safe:
// one write, then _exit).
void stop_now_on_signal() {
    struct sigaction sa {};
    sa.sa_handler = [](int) {
        static const char msg[] = "trestle: second signal: stopping now\n";
        [[maybe_unused]] auto n = ::write(2, msg, sizeof msg - 1);
        ::_exit(0);
    };
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
    // The server's signal sets put the others back to their default when
    // they went away.
    quiet_signals_outside_run();
    // Asio may have left them blocked in this thread; unblock them here.
    sigset_t set;
    sigemptyset(&set);
    for (int sig : {SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGTTIN, SIGTTOU}) sigaddset(&set, sig);
    ::pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

[[noreturn]] void loop_stuck() {
    log::warning("an event loop thread is stuck in a callback; exiting without finalizing Python");
    std::fflush(stderr);
    ::_exit(0);
}

// Stops the pool, waiting while `left()` allows for its running jobs, but
// no longer once a thread is known stuck in C code (--timeout-grace): that
// job never ends, and waiting for it would only delay the exit.
template <class Left>
bool stop_pool(runtime::thread_pool& pool, const runtime::request_watchdog* watchdog, Left left) {
    using namespace std::chrono_literals;
    for (;;) {
        if (watchdog && watchdog->stuck_count() > 0) {
            log::warning("a pool thread is stuck in C code (see above): not waiting for it");
            return false;
        }
        auto slice = watchdog ? std::min(left(), std::chrono::milliseconds(100ms)) : left();
        if (pool.stop(slice.count())) return true;
        if (left().count() == 0) return false;
    }
}

[[noreturn]] void die(int code, const std::string& msg) {
    std::fprintf(stderr, "trestle: error: %s\n", msg.c_str());
    std::fflush(stderr);
    ::_exit(code);
}

// "wsgi", "asgi3" or "asgi2" for the app, honouring the mount's interface
// (or --interface).
std::string choose_interface(const std::string& wanted, py::borrowed app) {
    py::ref kind = call_asgi_helper("detect", app);
    if (!kind) {
        py::print_exception();
        die(1, "cannot inspect the app");
    }
    std::string detected = py::text(kind.get());
    if (wanted == "wsgi") return "wsgi";
    if (wanted == "asgi") return detected == "asgi2" ? "asgi2" : "asgi3";
    return detected;
}

// One mount being set up: its spec, and for Python apps the loaded app.
struct mounted {
    const mount_spec* spec;
    std::string iface;   // wsgi, asgi2, asgi3; empty for static and proxy mounts
    py::ref app, lifespan;
    std::unique_ptr<handler> h;
    std::unique_ptr<mounted> shadow;   // the shadow's app (shadow mode), set up like a mount
};

std::string where(const mount_spec& m) {
    return m.prefix.empty() ? "the root mount" : "mount " + m.prefix;
}

// Flask async views on the shared loop (adapters/python/trestle/flask.py):
// trestle.flask._attach installs the integration on a Flask app if
// `automatic` (flask_async, per mount or server-wide), on the shared loop or,
// with `own_loop` (flask_loop = "own"), on a loop of the app's own.
struct flask_attached {
    bool shared_loop = false;   // the shared loop must run: for this app, or
                                // for the explicit installs and startup hooks so far
    py::ref own_runner;         // set: start a loop of its own for this runner
};

flask_attached attach_flask(py::borrowed app, bool automatic, bool own_loop, const std::string& name) {
    py::ref mod = py::ref::steal(PyImport_ImportModule("trestle.flask"));
    py::ref fn = py::ref::steal(mod ? PyObject_GetAttrString(mod.get(), "_attach") : nullptr);
    py::borrowed flag = automatic ? Py_True : Py_False;
    py::borrowed own = own_loop ? Py_True : Py_False;
    py::ref r = py::ref::steal(fn ? PyObject_CallFunctionObjArgs(fn.get(), app.get(), flag.get(), own.get(), nullptr) : nullptr);
    if (!r) {
        py::print_exception();
        die(1, "cannot set up the Flask integration for " + name);
    }
    py::borrowed note = PyTuple_GET_ITEM(r.get(), 1);
    if (note != Py_None) log::info(name + ": " + py::text(note));
    flask_attached out;
    out.shared_loop = PyTuple_GET_ITEM(r.get(), 0) == Py_True;
    py::borrowed runner = PyTuple_GET_ITEM(r.get(), 2);
    if (runner != Py_None) out.own_runner = runner.copy();
    return out;
}

} // namespace

struct loaded_apps {
    std::vector<mounted> apps;
    bool any_asgi = false, flask_loop = false;
    std::vector<std::pair<std::string, py::ref>> own_loop_runners;   // app name, trestle.flask runner
};

void loaded_apps_deleter::operator()(loaded_apps* la) const {
    // Python references: dropped with the GIL (held by this thread since load_apps).
    delete la;
}

// Outside net::server::run (while the apps load, and after the drain), where
// the server's signal sets are not there: QUIT stops at once as it does
// while serving, and HUP, USR1, USR2, TTIN and TTOU do nothing instead of
// their default action (ending the process). A handler, not SIG_IGN, which
// an app's child would inherit over exec. Async-signal-safe: one write, then _exit.
void quiet_signals_outside_run() {
    struct sigaction quit {};
    quit.sa_handler = [](int) {
        static const char msg[] = "trestle: SIGQUIT: stopping now\n";
        [[maybe_unused]] auto n = ::write(2, msg, sizeof msg - 1);
        ::_exit(0);
    };
    sigemptyset(&quit.sa_mask);
    ::sigaction(SIGQUIT, &quit, nullptr);
    struct sigaction quiet {};
    quiet.sa_handler = [](int) {};
    sigemptyset(&quiet.sa_mask);
    for (int sig : {SIGHUP, SIGUSR1, SIGUSR2, SIGTTIN, SIGTTOU}) ::sigaction(sig, &quiet, nullptr);
}

static mounted load_mount(const mount_spec& spec, const options& opt, loaded_apps& la);

apps_ptr load_apps(const options& opt) {
    py::interpreter_options io{opt.chdir, opt.pythonpath, opt.venv};
    io.write_bytecode = !opt.reload;   // see interpreter_options
    py::initialize(io);
    apps_ptr la(new loaded_apps);
    // Every Python app is loaded before anything starts, shadows too.
    for (auto& spec : opt.mounts) {
        la->apps.push_back(load_mount(spec, opt, *la));
        // shadow_process: the shadow's app loads in its own process (serve()).
        if (spec.shadow && !spec.shadow->process)
            la->apps.back().shadow = std::make_unique<mounted>(load_mount(*spec.shadow->target, opt, *la));
    }

    return la;
}

// Loads one mount's app (static and proxy mounts have none).
static mounted load_mount(const mount_spec& spec, const options& opt, loaded_apps& la) {
    mounted m{&spec, {}, {}, {}, {}, {}};
    if (spec.type != mount_spec::kind::app) return m;
    m.app = py::load_app(spec.app);
    m.iface = choose_interface(spec.interface.empty() ? opt.interface : spec.interface, m.app.get());
    if (m.iface == "asgi2") {
        m.app = call_asgi_helper("asgi2_to_3", m.app.get());
        if (!m.app) {
            py::print_exception();
            die(1, "cannot wrap the ASGI 2 app " + spec.app);
        }
    }
    la.any_asgi = la.any_asgi || m.iface != "wsgi";
    if (m.iface == "wsgi") {
        bool own = spec.flask_loop.value_or(opt.flask_loop) == "own";
        flask_attached f = attach_flask(m.app.get(), spec.flask_async.value_or(opt.flask_async), own, spec.app);
        la.flask_loop = f.shared_loop || la.flask_loop;
        if (f.own_runner) la.own_loop_runners.emplace_back(spec.app, std::move(f.own_runner));
    }
    return m;
}

int serve(options& opt, apps_ptr la, sd::notifier& notify, const serve_role& role) {
    if (role.supervised) set_link(role.link_fd);
    std::unique_ptr<access_log> access;
    if (opt.access_log) {
        try {
            access = std::make_unique<access_log>(*opt.access_log, opt.access_log_format);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "trestle: error: %s\n", e.what());
            return 2;
        }
    }

    net::server_context ctx;
    ctx.limits = opt.limits;
    ctx.output_hwm = opt.output_hwm;
    ctx.preread_bytes = opt.preread_bytes;
    ctx.body_buffer_bytes = opt.body_buffer_bytes;
    ctx.body_temp_dir = opt.body_temp_dir;
    ctx.server_header = opt.server_header;
    ctx.retry_after = std::to_string(opt.retry_after);
    ctx.apps_in_flight.set_limit(opt.limit_concurrency);
    ctx.max_connections = opt.worker_connections;
    ctx.ws_max_size = opt.ws_max_size;
    ctx.http2 = opt.http == "auto";
    ctx.h2_max_streams = opt.h2_max_streams;
    ctx.ws_idle_timeout = opt.ws_idle_timeout;
    ctx.request_timeout = opt.timeout;
    ctx.access = access.get();
    ctx.log_response_head = access && access->needs_response_head();
    ctx.trusted.set_family(opt.forwarded_headers == "forwarded" ? net::forwarded_family::forwarded
                                                                : net::forwarded_family::x_forwarded);
    if (std::string why; !ctx.trusted.parse(opt.forwarded_allow_ips, why)) {
        std::fprintf(stderr, "trestle: error: --forwarded-allow-ips: %s\n", why.c_str());
        return 2;
    }

    if (!la) la = load_apps(opt);
    auto& apps = la->apps;
    const bool any_asgi = la->any_asgi, flask_loop = la->flask_loop;
    auto& own_loop_runners = la->own_loop_runners;

    // --timeout for WSGI requests: raising into their threads, and noticing
    // the threads that never come back (ASGI requests need no thread of it).
    // Made here, in the worker: threads do not survive a fork.
    std::unique_ptr<runtime::request_watchdog> watchdog;
    bool any_wsgi = std::any_of(apps.begin(), apps.end(), [](const mounted& m) {
        return m.iface == "wsgi" || (m.shadow && m.shadow->iface == "wsgi");
    });
    if (opt.timeout.count() > 0 && any_wsgi) {
        watchdog = std::make_unique<runtime::request_watchdog>(opt.timeout, opt.timeout_grace);
        ctx.watchdog = watchdog.get();
    }

    // Metrics (--metrics-path, and --dashboard, which shows them): on before
    // the pool starts, whose threads then time their queue and GIL waits.
    shadow::board shadows;   // before the registry that renders it
    std::unique_ptr<metrics::registry> stats;
    net::trusted_proxies stats_allow;
    if (!opt.metrics_path.empty() || !opt.dashboard_path.empty()) {
        if (std::string why; !opt.metrics_path.empty() && !stats_allow.parse(opt.metrics_allow, why)) {
            std::fprintf(stderr, "trestle: error: --metrics-allow: %s\n", why.c_str());
            return 2;
        }
        stats = std::make_unique<metrics::registry>();
        metrics::set_current(stats.get());
    }

    // One pool and, if any app needs it, one loop, shared by every mount.
    // The loop's executor jobs get threads of their own (see thread_pool.hpp).
    runtime::thread_pool pool(opt.threads, opt.max_queue, stats != nullptr);
    std::unique_ptr<runtime::thread_pool> blocking;
    std::unique_ptr<runtime::loop_thread> loop;
    // Loops of their own for the Flask apps that ask (flask_loop = "own").
    std::vector<std::unique_ptr<runtime::loop_thread>> own_loops;
    if (any_asgi || flask_loop || !own_loop_runners.empty()) {
        runtime::thread_pool::settings bs;
        bs.min_threads = 0;
        bs.max_threads = opt.blocking_threads;
        bs.max_queue = opt.max_queue;
        bs.idle_timeout = std::chrono::seconds(30);   // docs/configuration.md
        bs.name = "trestle-block";
        blocking = std::make_unique<runtime::thread_pool>(bs);
    }
    runtime::loop_settings ls;
    ls.kind = opt.loop;
    ls.startup_timeout = opt.startup_timeout;
    ls.block_warn = opt.loop_block_warn;
    ls.measured = stats != nullptr;
    if (any_asgi || flask_loop) {
        loop = std::make_unique<runtime::loop_thread>(ls, *blocking);
        bool started;
        {
            py::gil_release nogil;   // the loop's startup hooks run Python
            started = loop->start();
        }
        if (!started) die(1, "the event loop could not start, or a startup hook failed (see above)");
    }
    for (auto& [name, runner] : own_loop_runners) {
        runtime::loop_settings own = ls;
        own.label = "the event loop of " + name;
        own.thread_name = "trestle-loop" + std::to_string(own_loops.size() + 1);
        own_loops.push_back(std::make_unique<runtime::loop_thread>(own, *blocking, std::move(runner)));
        bool started;
        {
            py::gil_release nogil;
            started = own_loops.back()->start();
        }
        if (!started) die(1, "the event loop for " + name + " could not start (see above)");
    }
    own_loop_runners.clear();

    services shared{opt, ctx, &pool, loop.get()};
    auto start_mount = [&](mounted& m) {
        const mount_spec& spec = *m.spec;
        // ASGI lifespan startup runs before the mount serves; its state goes
        // into every scope of the app.
        py::ref state;
        if (spec.type == mount_spec::kind::app && m.iface != "wsgi" && opt.lifespan != "off") {
            py::ref mode = py::ref::steal(PyUnicode_FromString(opt.lifespan.c_str()));
            m.lifespan = call_asgi_helper("Lifespan", m.app.get(), mode.get(), loop->loop());
            py::ref limit = py::ref::steal(PyFloat_FromDouble(static_cast<double>(opt.startup_timeout.count()) / 1000.0));
            py::ref result = m.lifespan ? call_asgi_helper("run_startup", m.lifespan.get(), limit.get()) : py::ref{};
            if (!result) {
                py::print_exception();
                die(1, "ASGI lifespan startup failed for " + spec.app);
            }
            if (PyTuple_GET_ITEM(result.get(), 0) != Py_True) {
                py::borrowed why = PyTuple_GET_ITEM(result.get(), 1);
                die(1, "ASGI lifespan startup failed for " + spec.app + ": " + py::text(why));
            }
            py::ref supported = py::ref::steal(PyObject_GetAttrString(m.lifespan.get(), "supported"));
            if (supported.get() == Py_True) {
                state = py::ref::steal(PyObject_GetAttrString(m.lifespan.get(), "state"));
            } else {
                log::info("ASGI lifespan not supported by " + spec.app + "; continuing without it");
                m.lifespan.reset();
            }
        }
        mount_source source{spec, m.app ? &m.app : nullptr, state ? &state : nullptr};
        try {
            switch (spec.type) {
            case mount_spec::kind::static_files: m.h = statics::make_handler(source, shared); break;
            case mount_spec::kind::proxy: m.h = proxy::make_handler(source, shared); break;
            case mount_spec::kind::app:
                m.h = m.iface == "wsgi" ? wsgi::make_handler(source, shared) : asgi::make_handler(source, shared);
                break;
            }
        } catch (const mount_error& e) {
            if (e.status() == 2) die(2, spec.origin + ": " + where(spec) + ": " + e.what());
            py::print_exception();
            die(e.status(), e.what());
        }
    };
    // Shadow mode: the mount's handler and its shadow's, behind one that
    // replays and compares (adapters/shadow).
    // With shadow_process, a child process serves the shadow's app and the
    // mount's shadow is a proxy to it (stopped after the mirrors, below).
    std::vector<std::unique_ptr<shadow::shadow_process>> shadow_children;
    std::vector<std::shared_ptr<shadow::mirror>> mirrors;
    for (auto& m : apps) {
        start_mount(m);
        if (!m.spec->shadow) continue;
        std::string shadow_name = m.spec->shadow->target->describe();
        shadow::shadow_process* child = nullptr;
        if (m.spec->shadow->process) {
            std::optional<mount_error> failed;
            {
                py::gil_release nogil;   // the wait for the child
                try {
                    shadow_children.push_back(std::make_unique<shadow::shadow_process>(*m.spec, opt));
                } catch (const mount_error& e) {
                    failed = e;
                }
            }
            if (failed) die(failed->status(), m.spec->origin + ": " + where(*m.spec) + ": " + failed->what());
            child = shadow_children.back().get();
            m.shadow = std::make_unique<mounted>(mounted{&child->proxy_spec(), {}, {}, {}, {}, {}});
        }
        start_mount(*m.shadow);
        std::shared_ptr<shadow::mirror> mirror;
        try {
            mirror = std::make_shared<shadow::mirror>(*m.spec, *m.shadow->h, shadow_name);
        } catch (const mount_error& e) {
            die(e.status(), m.spec->origin + ": " + where(*m.spec) + ": " + e.what());
        }
        if (child) mirror->count_restarts([child] { return child->restarts(); });
        m.h = std::make_unique<shadow::shadow_handler>(std::move(m.h), std::move(m.shadow->h), mirror);
        shadows.add(mirror.get());
        mirrors.push_back(std::move(mirror));
    }
    // Everything the apps made while loading and starting up is moved out of
    // the garbage collector's generations (gc.freeze()): the collections that
    // requests trigger no longer walk the whole loaded heap again and again.
    // Measured on Quart hello at 64 connections: a full collection of that
    // heap ran every ~2,000 requests for 12-15 ms (docs/benchmarks.md).
    {
        py::ref gc = py::ref::steal(PyImport_ImportModule("gc"));
        py::ref freeze = py::ref::steal(gc ? PyObject_GetAttrString(gc.get(), "freeze") : nullptr);
        py::ref r = py::ref::steal(freeze ? PyObject_CallNoArgs(freeze.get()) : nullptr);
        if (!r) {
            log::warning("gc.freeze() failed; serving without it:");
            py::print_exception();
        }
    }
    handler* root = nullptr;
    std::vector<std::uint16_t> ids(apps.size(), 0);
    for (std::size_t i = 0; i < apps.size(); ++i) {
        auto& m = apps[i];
        if (m.spec->prefix.empty()) root = m.h.get();
        if (stats) {
            std::string iface = m.spec->type == mount_spec::kind::static_files ? "static"
                                : m.spec->type == mount_spec::kind::proxy      ? "proxy"
                                : m.iface == "wsgi"                            ? "wsgi"
                                                                               : "asgi";
            ids[i] = stats->add_mount(m.spec->prefix, iface);
            // The next row holds the requests of a WSGI app's Flask async
            // views (exchange::async_view); app mounts of any interface get
            // one, so that the supervisor can size the workers' shared table
            // without knowing the interfaces (an ASGI mount's stays unnamed
            // and unshown).
            if (m.spec->type == mount_spec::kind::app) stats->add_mount(m.spec->prefix, m.iface == "wsgi" ? "flask-async" : "");
        }
    }
    std::uint16_t root_id = 0;
    for (std::size_t i = 0; i < apps.size(); ++i)
        if (apps[i].spec->prefix.empty()) root_id = ids[i];
    router::mount_table table(root, ctx.server_header, root_id);
    for (std::size_t i = 0; i < apps.size(); ++i)
        if (!apps[i].spec->prefix.empty()) table.add(apps[i].spec->prefix, *apps[i].h, ids[i]);
    std::unique_ptr<metrics::endpoint> stats_endpoint;
    // --metrics-bind: the metrics on listeners of their own, with a mount
    // table that has nothing else (any other path there is 404).
    router::mount_table metrics_table(nullptr, ctx.server_header);
    if (stats && !opt.metrics_path.empty()) {
        stats_endpoint = std::make_unique<metrics::endpoint>(*stats, stats_allow, ctx.server_header);
        (opt.metrics_binds.empty() ? table : metrics_table)
            .add(opt.metrics_path, *stats_endpoint, stats->add_mount(opt.metrics_path, "metrics"));
    }
    std::unique_ptr<health::endpoint> health_endpoint;
    if (!opt.health_path.empty()) {
        health_endpoint = std::make_unique<health::endpoint>(ctx.unready, ctx.server_header);
        table.add(opt.health_path, *health_endpoint, stats ? stats->add_mount(opt.health_path, "health") : 0);
    }
    // --dashboard, with shadow mode's view (thread-safe, called on io threads).
    dashboard::shadow_source shadow_json = [&shadows] { return shadows.json(); };
    std::unique_ptr<dashboard::endpoint> dashboard_endpoint;
    if (!opt.dashboard_path.empty()) {
        dashboard::settings ds;
        std::string why;
        ds.allow.parse(opt.dashboard_allow, why);   // checked with the options
        ds.token = opt.dashboard_token;
        dashboard_endpoint = std::make_unique<dashboard::endpoint>(*stats, std::move(ds), shadow_json, ctx);
        table.add(opt.dashboard_path, *dashboard_endpoint, stats->add_mount(opt.dashboard_path, "dashboard"));
    }
    ctx.router = &table;
    // WebSockets over HTTP/2 unless a mount relays WebSocket upgrades (a
    // proxy mount tunnels HTTP/1.1 only; with it on, browsers would bring
    // that mount's WebSockets over HTTP/2 too).
    {
        net::request_head probe;
        probe.method = "GET";
        probe.upgrade = true;
        probe.headers.push_back({"Upgrade", "websocket", 0});
        probe.headers.push_back({"Connection", "upgrade", 0});
        ctx.h2_websockets = ctx.http2;
        for (auto& m : apps)
            if (m.h->duties_for(probe).tunnel_upgrade) ctx.h2_websockets = false;
    }

    net::server srv(ctx, opt.io_threads, opt.backlog);
    srv.set_notifier(&notify);
    srv.set_drain_delay(opt.drain_delay);
    if (role.supervised) {
        srv.set_supervised([] { tell(worker_event::ready); });
        // Counted from now in the memory the workers share: the others may
        // leave new connections to this one (see load_table.hpp).
        if (load_table* loads = worker_load_table(); loads && worker_load_slot() >= 0) {
            int slot = worker_load_slot();
            ctx.shared_load = loads->counter(slot);
            ctx.shared_load->store(0);
            ctx.least_other_load = [loads, slot] { return loads->least_other(slot); };
        }
    }
    if (stats && !shadows.empty()) stats->add_series([&shadows](std::string& out) { shadows.render(out); });
    if (stats) {
        // Read at each scrape, on the io thread that serves it.
        auto pool_value = [&pool](std::size_t runtime::thread_pool::snapshot::*field) {
            return [&pool, field] { return static_cast<double>(pool.stats().*field); };
        };
        using snap = runtime::thread_pool::snapshot;
        stats->add_value("trestle_pool_threads", "Pool threads alive.", "gauge", "", pool_value(&snap::threads));
        stats->add_value("trestle_pool_busy_threads", "Pool threads running requests.", "gauge", "",
                         pool_value(&snap::busy));
        stats->add_value("trestle_pool_queue_depth", "Requests waiting in the pool's queue.", "gauge", "",
                         pool_value(&snap::queued));
        stats->add_value("trestle_pool_queue_high_water", "The most requests the pool's queue has held at once.",
                         "gauge", "", pool_value(&snap::queue_high_water));
        stats->add_value("trestle_pool_queue_limit", "The pool queue's bound (--max-queue); past it, 503.", "gauge", "",
                         [n = opt.max_queue] { return static_cast<double>(n); });
        stats->add_value("trestle_connections_open", "Client connections open.", "gauge", "",
                         [&srv] { return static_cast<double>(srv.connections()); });
        if (loop) {
            runtime::loop_thread* lt = loop.get();
            stats->add_value("trestle_loop_lag_seconds",
                             "How late the event loop runs: its 100 ms heartbeat's last lateness, or how overdue it is "
                             "now.",
                             "gauge", "", [lt] { return lt->lag_seconds(); });
            stats->add_value("trestle_loop_tasks", "Tasks alive on the event loop (counted about once a second).",
                             "gauge", "", [lt] { return static_cast<double>(std::max<std::int64_t>(lt->tasks(), 0)); });
            stats->add_value("trestle_loop_blocked_total", "Times the loop was blocked past --loop-block-warn.",
                             "counter", "", [lt] { return static_cast<double>(lt->blocked_count()); });
            stats->add_value("trestle_loop_cpu_seconds_total",
                             "CPU time of the event loop's thread: running Python (callbacks, tasks) and the loop "
                             "itself. Its rate is the share of the time the loop is busy.",
                             "counter", "", [lt] { return lt->cpu_seconds(); });
            stats->add_value("trestle_loop_turns_total",
                             "Turns of the event loop: each runs the callbacks and tasks that are ready, then waits "
                             "for events.",
                             "counter", "", [lt] { return static_cast<double>(lt->turns().turns()); });
            stats->add_value("trestle_loop_turn_seconds_total",
                             "Time the event loop's turns ran (its callbacks and tasks: Python, mostly), from a return "
                             "from waiting for events to the next wait. Over trestle_loop_turns_total: a turn's mean.",
                             "counter", "", [lt] { return lt->turns().seconds(); });
            for (std::size_t i = 0; i < runtime::turn_meter::long_turn.size(); ++i) {
                char label[32];
                std::snprintf(label, sizeof label, "over=\"%g\"", runtime::turn_meter::long_turn[i]);
                stats->add_value("trestle_loop_long_turns_total",
                                 "Turns of the event loop that ran longer than `over` seconds (a callback or task "
                                 "that holds the loop that long delays every other).",
                                 "counter", label, [lt, i] { return static_cast<double>(lt->turns().longer_than(i)); });
            }
        }
    }
    std::unique_ptr<net::tls_provider> tls;
    if (opt.tls.enabled()) {
        std::string why;
        auto first = net::tls_context::load(opt.tls, why);
        if (!first) {
            std::fprintf(stderr, "trestle: error: %s\n", why.c_str());
            std::fflush(stderr);
            ::_exit(2);
        }
        tls = std::make_unique<net::tls_provider>(opt.tls, std::move(first));
        if (!role.supervised) srv.set_tls_reload(tls.get());
        std::string no_ktls = net::kernel_tls_unavailable();
        std::string line = no_ktls.empty()
                               ? "TLS: kernel TLS is available: files go out with sendfile where the cipher allows"
                               : "TLS: no kernel TLS, " + no_ktls + ": files are read and encrypted 64 KiB at a time";
        if (role.supervised) log::debug(line);
        else log::info(line);
    }
    try {
        srv.listen(opt.binds, opt.tls.enabled() ? tls.get() : nullptr);
        srv.listen(opt.insecure_binds, nullptr, nullptr, "", "--insecure-bind");
        srv.listen(opt.metrics_binds, nullptr, &metrics_table, "metrics", "--metrics-bind");
    } catch (const net::bind_error& e) {
        std::fprintf(stderr, "trestle: error: %s\n", e.what());
        std::fflush(stderr);
        ::_exit(e.usage ? 2 : 1);
    }
    for (auto& m : apps) {
        std::string what = m.iface.empty() ? "" : m.iface == "wsgi" ? " (WSGI)" : " (ASGI, " + loop->kind() + " loop)";
        log::info("serving " + m.spec->describe() + what + (m.spec->prefix.empty() ? "" : " at " + m.spec->prefix));
        if (m.shadow) {
            const shadow_options& so = *m.spec->shadow;
            std::string methods;
            for (auto& meth : so.methods) methods += (methods.empty() ? "" : ",") + meth;
            char share[16];
            std::snprintf(share, sizeof share, "%g%%", so.sample * 100);
            std::string kind = m.shadow->iface.empty() ? "" : m.shadow->iface == "wsgi" ? " (WSGI)" : " (ASGI)";
            for (auto& child : shadow_children)
                if (&child->proxy_spec() == m.shadow->spec)
                    kind = " (pid " + std::to_string(child->pid()) + ", a process of its own at idle priority, on " +
                           child->url() + ")";
            log::info("shadow: " + so.target->describe() + kind + " answers a copy of " + share + " of the " +
                      methods + " requests " + (m.spec->prefix.empty() ? std::string("at /") : "under " + m.spec->prefix) +
                      (so.routes.empty() ? "" : " on shadow_routes") + "; only the answers are compared");
        }
    }
    for (auto& mm : mirrors) mm->start();
    log::info("serving with " + std::to_string(opt.threads) + " thread(s), pid " + std::to_string(::getpid()));
    if (opt.timeout.count() > 0) {
        auto secs = [](std::chrono::milliseconds ms) {
            char buf[32];
            std::snprintf(buf, sizeof buf, "%g", static_cast<double>(ms.count()) / 1000.0);
            return std::string(buf);
        };
        log::info("request timeout: " + secs(opt.timeout) + " s (--timeout); a WSGI thread that has not come back " +
                  secs(opt.timeout_grace) + " s later is stuck (--timeout-grace)");
    }
    if (opt.max_requests > 0) {
        // Each worker its own limit, so that they are not all replaced at
        // once (gunicorn's --max-requests-jitter).
        std::uint64_t jitter = 0;
        if (opt.max_requests_jitter > 0) {
            std::mt19937_64 rng(std::random_device{}() ^ static_cast<std::uint64_t>(::getpid()));
            jitter = std::uniform_int_distribution<std::uint64_t>(0, opt.max_requests_jitter)(rng);
        }
        ctx.request_limit = opt.max_requests + jitter;
        ctx.on_request_limit = [limit = ctx.request_limit] {
            log::info("served " + std::to_string(limit) + " requests (--max-requests): asking for a replacement");
            tell(worker_event::recycle);
        };
    }

    // With worker processes, each publishes its metrics into the
    // supervisor's table and answers a scrape for all of them. Stopped
    // (after a last publish) before what its values read is gone.
    struct stop_sharing {
        metrics::registry* r;
        ~stop_sharing() {
            if (r) r->stop_sharing();
        }
    } sharing{nullptr};
    if (stats && metrics::worker_shared()) {
        if (stats->share(metrics::worker_shared(), metrics::worker_shared_slot())) sharing.r = stats.get();
        else log::warning("metrics: the supervisor's table does not fit this worker's; it answers for itself only");
    }
    {
        // Python belongs to the other threads from here; the GIL comes back
        // for the last references and for finalizing.
        py::gil_release nogil;
        // A shadow_process child: loaded and started at normal priority (a
        // busy machine would otherwise hold the server's start-up behind
        // it); it serves at idle priority, every thread of it.
        if (const char* shadow = std::getenv(shadow::shadow_process::child_env); shadow && *shadow)
            runtime::set_process_idle();
        srv.run(opt.graceful_timeout);
        if (sharing.r) {
            sharing.r->stop_sharing();
            sharing.r = nullptr;
        }
        // From here a signal means "stop now", whatever is still being waited for.
        stop_now_on_signal();
        if (access) access->flush();

        // Everything after the drain (lifespan shutdowns, shutdown hooks, the
        // loop's cancelled tasks, the threads' last jobs) shares what is left of
        // the graceful period, and at least kCleanupFloor; nothing after a
        // second signal. Each step gives up on what overruns, so the process
        // ends within --graceful-timeout + kCleanupFloor (plus the last second
        // loop_thread::stop allows a stuck loop).
        using clock = std::chrono::steady_clock;
        const bool interrupted = srv.interrupted();
        const auto cleanup_end = interrupted ? clock::now() : std::max(srv.graceful_deadline(), clock::now() + kCleanupFloor);
        auto left = [&] {
            return std::max(std::chrono::milliseconds(0),
                            std::chrono::duration_cast<std::chrono::milliseconds>(cleanup_end - clock::now()));
        };
        std::vector<mounted*> with_lifespan;
        for (auto& m : apps) {
            with_lifespan.push_back(&m);
            if (m.shadow) with_lifespan.push_back(m.shadow.get());
        }
        for (mounted* mp : with_lifespan) {
            mounted& m = *mp;
            if (!m.lifespan || interrupted) continue;
            py::gil_ensure gil;
            py::ref timeout = py::ref::steal(PyFloat_FromDouble(static_cast<double>(left().count()) / 1000.0));
            py::ref result = call_asgi_helper("run_shutdown", m.lifespan.get(), timeout.get());
            if (!result) py::print_exception();
            else if (PyTuple_GET_ITEM(result.get(), 0) != Py_True)
                log::error("ASGI lifespan shutdown failed for " + m.spec->app + ": " + py::text(PyTuple_GET_ITEM(result.get(), 1)));
        }
        for (auto& own : own_loops)
            if (!own->stop(left())) loop_stuck();
        if (loop && !loop->stop(left())) loop_stuck();
        // Jobs still queued or running get what is left of the cleanup time.
        bool threads_done = !blocking || blocking->stop(left().count());
        if (!threads_done || !stop_pool(pool, watchdog.get(), left)) {
            log::warning("app threads still busy at shutdown; exiting without finalizing Python");
            std::fflush(stderr);
            ::_exit(0);
        }
        // The replays are over with the pool and the loop: the judges
        // settle what they hold and end.
        for (auto& mm : mirrors) mm->stop();
        if (watchdog && !watchdog->stop(left() + std::chrono::seconds(1))) {
            log::warning("the request watchdog is stuck waiting for the GIL; exiting without finalizing Python");
            std::fflush(stderr);
            ::_exit(0);
        }
    }
    // The handlers own Python references.
    apps.clear();
    watchdog.reset();
    py::finalize();
    log::info("stopped");
    return 0;
}


} // namespace trestle::supervisor
