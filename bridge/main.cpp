// trestle: serve a Python web app (WSGI on the thread pool, ASGI on the loop).
#include "adapters/asgi/asgi_handler.hpp"
#include "adapters/proxy/proxy_handler.hpp"
#include "adapters/static/static_handler.hpp"
#include "adapters/wsgi/wsgi_handler.hpp"
#include "bridge/config/options.hpp"
#include "bridge/net/server.hpp"
#include "bridge/observability/access_log.hpp"
#include "bridge/observability/log.hpp"
#include "bridge/python/app_loader.hpp"
#include "bridge/python/interpreter.hpp"
#include "bridge/router/mount_table.hpp"
#include "bridge/runtime/loop_thread.hpp"
#include "bridge/runtime/thread_pool.hpp"

#include <csignal>
#include <cstdio>
#include <memory>
#include <unistd.h>

using namespace trestle;

namespace {

// trestle._asgi.NAME(args...), GIL held. Null with the exception set.
py::ref call_asgi_helper(const char* name, PyObject* a, PyObject* b = nullptr, PyObject* c = nullptr) {
    py::ref mod = py::ref::steal(PyImport_ImportModule("trestle._asgi"));
    py::ref fn = py::ref::steal(mod ? PyObject_GetAttrString(mod.get(), name) : nullptr);
    return py::ref::steal(fn ? PyObject_CallFunctionObjArgs(fn.get(), a, b, c, nullptr) : nullptr);
}

[[noreturn]] void die(int code, const std::string& msg) {
    std::fprintf(stderr, "trestle: error: %s\n", msg.c_str());
    std::fflush(stderr);
    ::_exit(code);
}

// "wsgi", "asgi3" or "asgi2" for the app, honouring the mount's interface
// (or --interface).
std::string choose_interface(const std::string& wanted, PyObject* app) {
    py::ref kind = call_asgi_helper("detect", app);
    if (!kind) {
        py::print_exception();
        die(1, "cannot inspect the app");
    }
    std::string detected = PyUnicode_AsUTF8(kind.get());
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
};

std::string where(const mount_spec& m) {
    return m.prefix.empty() ? "the root mount" : "mount " + m.prefix;
}

// Flask async views on the shared loop (adapters/python/trestle/flask.py):
// trestle.flask._attach installs the integration on a Flask app if
// `automatic` (flask_async, per mount or server-wide). True if the loop must
// run: for this app, or for the explicit installs and startup hooks of the
// apps loaded so far.
bool attach_flask(PyObject* app, bool automatic, const std::string& name) {
    py::ref mod = py::ref::steal(PyImport_ImportModule("trestle.flask"));
    py::ref fn = py::ref::steal(mod ? PyObject_GetAttrString(mod.get(), "_attach") : nullptr);
    PyObject* flag = automatic ? Py_True : Py_False;   // borrowed
    py::ref r = py::ref::steal(fn ? PyObject_CallFunctionObjArgs(fn.get(), app, flag, nullptr) : nullptr);
    if (!r) {
        py::print_exception();
        die(1, "cannot set up the Flask integration for " + name);
    }
    PyObject* note = PyTuple_GET_ITEM(r.get(), 1);   // borrowed
    if (note != Py_None) log::info(name + ": " + PyUnicode_AsUTF8(note));
    return PyTuple_GET_ITEM(r.get(), 0) == Py_True;
}

} // namespace

int main(int argc, char** argv) {
    options opt = parse_options(argc, argv);
    log::set_level(opt.log_level);
    std::signal(SIGPIPE, SIG_IGN);

    // Bind addresses are checked before Python starts: a typo costs no import.
    for (auto& b : opt.binds) {
        try {
            net::parse_bind(b);
        } catch (const net::bind_error& e) {
            std::fprintf(stderr, "trestle: error: %s\n", e.what());
            return 2;
        }
    }

    std::unique_ptr<access_log> access;
    if (opt.access_log) {
        try {
            access = std::make_unique<access_log>(*opt.access_log);
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
    ctx.ws_max_size = opt.ws_max_size;
    ctx.ws_idle_timeout = opt.ws_idle_timeout;
    ctx.access = access.get();
    if (std::string why; !ctx.trusted.parse(opt.forwarded_allow_ips, why)) {
        std::fprintf(stderr, "trestle: error: --forwarded-allow-ips: %s\n", why.c_str());
        return 2;
    }

    py::initialize({opt.chdir, opt.pythonpath, opt.venv});

    // Every Python app is loaded before anything starts.
    std::vector<mounted> apps;
    bool any_asgi = false, flask_loop = false;
    for (auto& spec : opt.mounts) {
        mounted m{&spec, {}, {}, {}, {}};
        if (spec.type == mount_spec::kind::app) {
            m.app = py::load_app(spec.app);
            m.iface = choose_interface(spec.interface.empty() ? opt.interface : spec.interface, m.app.get());
            if (m.iface == "asgi2") {
                m.app = call_asgi_helper("asgi2_to_3", m.app.get());
                if (!m.app) {
                    py::print_exception();
                    die(1, "cannot wrap the ASGI 2 app " + spec.app);
                }
            }
            any_asgi = any_asgi || m.iface != "wsgi";
            if (m.iface == "wsgi")
                flask_loop = attach_flask(m.app.get(), spec.flask_async.value_or(opt.flask_async), spec.app) || flask_loop;
        }
        apps.push_back(std::move(m));
    }

    // One pool and, if any app needs it, one loop, shared by every mount.
    runtime::thread_pool pool(opt.threads, opt.max_queue);
    std::unique_ptr<runtime::loop_thread> loop;
    if (any_asgi || flask_loop) {
        loop = std::make_unique<runtime::loop_thread>(opt.loop, pool);
        py::release_main_thread();
        bool started = loop->start();
        py::acquire_main_thread();
        if (!started) die(1, "the event loop could not start, or a startup hook failed (see above)");
    }

    for (auto& m : apps) {
        const mount_spec& spec = *m.spec;
        if (spec.type == mount_spec::kind::static_files) {
            try {
                m.h = std::make_unique<statics::static_handler>(spec.files, ctx, spec.prefix);
            } catch (const std::exception& e) {
                die(2, spec.origin + ": " + where(spec) + ": " + e.what());
            }
            continue;
        }
        if (spec.type == mount_spec::kind::proxy) {
            try {
                m.h = std::make_unique<proxy::proxy_handler>(spec.proxy, ctx, spec.prefix);
            } catch (const std::exception& e) {
                die(2, spec.origin + ": " + where(spec) + ": " + e.what());
            }
            continue;
        }
        if (m.iface == "wsgi") {
            m.h = std::make_unique<wsgi::wsgi_handler>(m.app, pool, ctx, spec.prefix,
                                                       spec.buffer_body.value_or(opt.buffer_body));
            continue;
        }
        if (spec.buffer_body.value_or(false))
            log::warning(spec.origin + ": buffer_body applies to WSGI apps; " + spec.app + " is ASGI and streams its body");
        auto h = std::make_unique<asgi::asgi_handler>(m.app, *loop, ctx, spec.prefix);
        if (!spec.prefix.empty()) {
            py::ref excludes = call_asgi_helper("path_excludes_root", m.app.get());
            if (!excludes) {
                py::print_exception();
                die(1, "cannot inspect the app " + spec.app);
            }
            h->scopes().set_path_excludes_root(excludes.get() == Py_True);
        }
        if (opt.lifespan != "off") {
            py::ref mode = py::ref::steal(PyUnicode_FromString(opt.lifespan.c_str()));
            m.lifespan = call_asgi_helper("Lifespan", m.app.get(), mode.get(), loop->loop());
            py::ref result = m.lifespan ? call_asgi_helper("run_startup", m.lifespan.get(), Py_None) : py::ref{};
            if (!result) {
                py::print_exception();
                die(1, "ASGI lifespan startup failed for " + spec.app);
            }
            if (PyTuple_GET_ITEM(result.get(), 0) != Py_True) {
                PyObject* why = PyTuple_GET_ITEM(result.get(), 1);   // borrowed
                die(1, "ASGI lifespan startup failed for " + spec.app + ": " + PyUnicode_AsUTF8(why));
            }
            py::ref supported = py::ref::steal(PyObject_GetAttrString(m.lifespan.get(), "supported"));
            if (supported.get() == Py_True) {
                py::ref state = py::ref::steal(PyObject_GetAttrString(m.lifespan.get(), "state"));
                h->scopes().set_state(state.get());
            } else {
                log::info("ASGI lifespan not supported by " + spec.app + "; continuing without it");
                m.lifespan.reset();
            }
        }
        m.h = std::move(h);
    }
    handler* root = nullptr;
    for (auto& m : apps)
        if (m.spec->prefix.empty()) root = m.h.get();
    router::mount_table table(root, ctx.server_header);
    for (auto& m : apps)
        if (!m.spec->prefix.empty()) table.add(m.spec->prefix, *m.h);
    ctx.app = apps.size() == 1 && root ? root : static_cast<handler*>(&table);

    net::server srv(ctx, opt.io_threads, opt.backlog);
    try {
        srv.listen(opt.binds);
    } catch (const net::bind_error& e) {
        std::fprintf(stderr, "trestle: error: %s\n", e.what());
        std::fflush(stderr);
        ::_exit(e.usage ? 2 : 1);
    }
    for (auto& m : apps) {
        std::string what = m.iface.empty() ? "" : m.iface == "wsgi" ? " (WSGI)" : " (ASGI, " + loop->kind() + " loop)";
        log::info("serving " + m.spec->describe() + what + (m.spec->prefix.empty() ? "" : " at " + m.spec->prefix));
    }
    log::info("serving with " + std::to_string(opt.threads) + " thread(s), pid " + std::to_string(::getpid()));

    py::release_main_thread();
    bool clean = srv.run(opt.graceful_timeout);
    if (access) access->flush();

    for (auto& m : apps) {
        if (!m.lifespan) continue;
        py::gil_ensure gil;
        py::ref timeout = py::ref::steal(PyFloat_FromDouble(opt.graceful_timeout.count() / 1000.0 + 1));
        py::ref result = call_asgi_helper("run_shutdown", m.lifespan.get(), timeout.get());
        if (!result) py::print_exception();
        else if (PyTuple_GET_ITEM(result.get(), 0) != Py_True)
            log::error("ASGI lifespan shutdown failed for " + m.spec->app + ": " + PyUnicode_AsUTF8(PyTuple_GET_ITEM(result.get(), 1)));
    }
    if (loop) loop->stop();
    // Jobs still queued or running get what is left of the graceful period.
    if (!pool.stop(clean ? 5000 : 0)) {
        log::warning("app threads still busy at shutdown; exiting without finalizing Python");
        std::fflush(stderr);
        ::_exit(0);
    }
    {
        // The handler owns Python references: drop them with the GIL.
        py::gil_ensure gil;
        apps.clear();
    }
    py::finalize();
    log::info("stopped");
    return 0;
}
