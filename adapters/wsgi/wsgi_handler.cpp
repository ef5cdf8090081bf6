#include "adapters/wsgi/wsgi_handler.hpp"

#include "adapters/wsgi/wsgi.hpp"
#include "bridge/config/options.hpp"
#include "bridge/net/app_port.hpp"
#include "bridge/net/server_context.hpp"
#include "bridge/observability/log.hpp"
#include "bridge/observability/metrics.hpp"
#include "bridge/python/names.hpp"
#include "bridge/python/interpreter.hpp"
#include "bridge/runtime/request_watchdog.hpp"
#include "bridge/runtime/thread_pool.hpp"

#include <boost/asio/post.hpp>

namespace trestle::wsgi {

void init_types() {
    static bool done = false;
    if (done) return;
    init_response_type();
    init_input_type();
    init_file_wrapper_type();
    done = true;
}

wsgi_handler::wsgi_handler(py::ref app, runtime::thread_pool& pool, const net::server_context& ctx,
                           std::string script_name, bool buffer_body)
    : app_(std::move(app)), pool_(pool), ctx_(ctx), environ_((init_types(), std::move(script_name))),
      buffer_body_(buffer_body) {}

wsgi_handler::~wsgi_handler() = default;

std::unique_ptr<handler> make_handler(const mount_source& m, const services& s) {
    return std::make_unique<wsgi_handler>(m.app->copy(), *s.pool, s.ctx, m.spec.prefix,
                                          m.spec.buffer_body.value_or(s.opt.buffer_body));
}

bool wsgi_handler::submit(std::shared_ptr<net::app_port> ex) {
    // The pool is woken once per turn of this io thread's event loop, after
    // every connection that became readable in it has submitted its request:
    // the pool then takes them as one batch under one GIL acquisition.
    thread_local bool wake_scheduled = false;
    auto io = ex->io_executor();
    if (!ctx_.apps_in_flight.try_enter()) return false;   // --limit-concurrency
    auto job = [this, ex = std::move(ex)] {
        run(*ex);
        ctx_.apps_in_flight.leave();
    };
    if (!pool_.try_submit(std::move(job), false)) {
        ctx_.apps_in_flight.leave();
        return false;
    }
    if (!wake_scheduled) {
        wake_scheduled = true;
        boost::asio::post(io, [this] {
            wake_scheduled = false;
            pool_.wake();
        });
    }
    return true;
}

namespace {

std::string describe(const net::app_port& ex) {
    std::string d = ex.head().method + " " + ex.head().target;
    // The exception is then most likely trestle.RequestTimeout landing.
    if (ex.timed_out()) d += ", after its --timeout";
    return d;
}

// Sends the iterable an app returned. False with an exception set on an app
// error; false with none when the client went away.
bool send_iterable(call& c, PyObject* result) {
    if (PyList_CheckExact(result) || PyTuple_CheckExact(result)) return c.on_sequence(result);
    if (auto region = file_wrapper_region(result)) return c.on_file(*region);
    py::ref it = py::ref::steal(PyObject_GetIter(result));
    if (!it) return false;
    for (;;) {
        py::ref item = py::ref::steal(PyIter_Next(it.get()));
        if (!item) return !PyErr_Occurred();
        if (!c.on_body(item.get())) return false;
    }
}

// PEP 3333: close() is called whatever happened. Its own exception is
// returned to the caller (set) only if nothing failed before.
bool close_iterable(PyObject* result) {
    if (!PyObject_HasAttrString(result, "close")) return true;
    py::ref r = py::ref::steal(PyObject_CallMethod(result, "close", nullptr));
    return static_cast<bool>(r);
}

} // namespace

void wsgi_handler::run(net::app_port& ex) {
    // First, so it ends last: after every Python call of this request.
    runtime::request_watchdog::request timing(ctx_.watchdog, ex);
    call c(ex, ctx_);
    py::ref input = new_input(&ex);
    py::ref environ = input ? environ_.build(ex.head(), ex.endpoint(), input.get()) : py::ref{};
    if (!environ) {
        c.fail(describe(ex));
        if (input) detach_input(input.get());
        return;
    }

    py::ref result = py::ref::steal(
        PyObject_CallFunctionObjArgs(app_.get(), environ.get(), c.start_response().get(), nullptr));
    // trestle.flask marks a request whose view ran on the loop.
    if (result && metrics::current() && PyDict_GetItemWithError(environ.get(), py::names::trestle_async_view))
        ex.count_as_async_view();
    if (!result) {
        c.fail(describe(ex));
    } else {
        bool ok = send_iterable(c, result.get());
        if (!ok && PyErr_Occurred()) {
            c.fail(describe(ex));
            if (!close_iterable(result.get())) {
                log::error("exception in close() of the response iterable:");
                py::print_exception();
            }
        } else if (!close_iterable(result.get())) {
            // The app's own error: logged even when the client has gone,
            // which fail() otherwise takes as the cause and keeps quiet about.
            if (c.client_gone()) {
                log::error("exception in app while handling " + describe(ex) +
                           " (in the iterable's close(), after the client went away):");
                py::print_exception();
            }
            c.fail(describe(ex) + " (in the iterable's close())");
        } else if (c.client_gone()) {
            if (!ex.timed_out()) log::debug("client went away during " + describe(ex));
        } else {
            c.complete();
        }
    }
    detach_input(input.get());
}

} // namespace trestle::wsgi
