#include "adapters/asgi/asgi_handler.hpp"

#include "adapters/asgi/http_call.hpp"
#include "adapters/asgi/ws_call.hpp"
#include "bridge/config/options.hpp"
#include "bridge/observability/log.hpp"
#include "bridge/net/app_port.hpp"
#include "bridge/net/response_writer.hpp"
#include "bridge/net/server_context.hpp"
#include "bridge/python/call.hpp"
#include "bridge/python/interpreter.hpp"
#include "bridge/runtime/loop_thread.hpp"

namespace trestle::asgi {

void init_types() {
    static bool done = false;
    if (done) return;
    init_done_type();
    init_call_type();
    init_ws_call_type();
    done = true;
}

asgi_handler::asgi_handler(py::ref app, runtime::loop_thread& loop, const net::server_context& ctx,
                           std::string root_path)
    : app_(std::move(app)), loop_(loop), ctx_(ctx), scopes_((init_types(), std::move(root_path))) {
    create_task_ = py::ref::steal(PyObject_GetAttrString(loop_.loop(), "create_task"));
    py::ref asyncio = py::ref::steal(PyImport_ImportModule("asyncio"));
    task_type_ = py::ref::steal(asyncio ? PyObject_GetAttrString(asyncio.get(), "Task") : nullptr);
    task_kwnames_ = py::ref::steal(Py_BuildValue("(ss)", "loop", "name"));
    if (!task_type_ || !task_kwnames_) py::print_exception();
}

asgi_handler::~asgi_handler() = default;

std::unique_ptr<handler> make_handler(const mount_source& m, const services& s) {
    const mount_spec& spec = m.spec;
    if (spec.buffer_body.value_or(false))
        log::warning(spec.origin + ": buffer_body applies to WSGI apps; " + spec.app + " is ASGI and streams its body");
    auto h = std::make_unique<asgi_handler>(m.app->copy(), *s.loop, s.ctx, spec.prefix);
    if (!spec.prefix.empty()) {
        // Whether the app wants root_path left out of path (trestle._asgi).
        py::ref mod = py::ref::steal(PyImport_ImportModule("trestle._asgi"));
        py::ref fn = py::ref::steal(mod ? PyObject_GetAttrString(mod.get(), "path_excludes_root") : nullptr);
        py::ref excludes = py::ref::steal(fn ? PyObject_CallOneArg(fn.get(), m.app->get()) : nullptr);
        if (!excludes) throw mount_error(1, "cannot inspect the app " + spec.app);
        h->scopes().set_path_excludes_root(excludes.get() == Py_True);
    }
    if (m.lifespan_state && *m.lifespan_state) h->scopes().set_state(*m.lifespan_state);
    return h;
}

bool asgi_handler::submit(std::shared_ptr<net::app_port> ex) {
    if (!ctx_.apps_in_flight.try_enter()) return false;   // --limit-concurrency
    // One eventfd write wakes the loop for every request posted before it runs.
    loop_.post([this, ex = std::move(ex)]() mutable { start(std::move(ex)); });
    return true;
}

void asgi_handler::start(std::shared_ptr<net::app_port> ex) {
    admission::place place(ctx_.apps_in_flight);   // entered in submit
    py::ref scope = scopes_.build(ex->head(), ex->endpoint());
    auto impl = std::make_unique<http_call>(ex, loop_, ctx_);
    impl->hold(std::move(place));
    py::ref call = new_call_object(std::move(impl));
    if (!call) {
        py::print_exception();
        net::response_writer w(*ex, ctx_);
        w.error_response(500);
        w.finish(false);
        return;
    }
    http_call* c = impl_of(call.get());
    if (!scope) return c->fail_early();
    py::ref receive = bound_receive(call.get());
    py::ref send = bound_send(call.get());
    py::ref done = bound_done(call.get());
    py::ref task = receive && send && done ? spawn(scope.get(), receive.get(), send.get(), done.get()) : py::ref{};
    if (!task) return c->fail_early();
    if (ctx_.request_timeout.count() > 0) c->arm_timeout(std::move(task), ctx_.request_timeout);
}

py::ref asgi_handler::spawn(PyObject* scope, PyObject* receive, PyObject* send, PyObject* done) {
    py::ref coro = py::ref::steal(PyObject_CallFunctionObjArgs(app_.get(), scope, receive, send, nullptr));
    if (!coro) return {};
    // loop.create_task(coro) unless the app installed no task factory, in
    // which case the same Task is made directly, with a fixed name.
    py::ref factory = py::call_method(loop_.loop(), py::names::get_task_factory);
    if (!factory) return {};
    py::ref task;
    if (factory.get() == Py_None && task_type_) {
        PyObject* args[] = {coro.get(), loop_.loop(), py::names::trestle_asgi};
        task = py::ref::steal(PyObject_Vectorcall(task_type_.get(), args, 1, task_kwnames_.get()));
    } else {
        task = py::ref::steal(PyObject_CallOneArg(create_task_.get(), coro.get()));
    }
    if (!task) return {};
    py::ref r = py::call_method(task.get(), py::names::add_done_callback, done);
    if (!r) py::print_exception();
    return task;
}

bool asgi_handler::submit_websocket(std::shared_ptr<net::ws_channel> ch) {
    if (!ctx_.apps_in_flight.try_enter()) return false;   // --limit-concurrency
    loop_.post([this, ch = std::move(ch)]() mutable { start_websocket(std::move(ch)); });
    return true;
}

void asgi_handler::start_websocket(std::shared_ptr<net::ws_channel> ch) {
    admission::place place(ctx_.apps_in_flight);   // entered in submit_websocket
    py::ref scope = scopes_.build_websocket(ch->head(), ch->endpoint());
    auto impl = std::make_unique<ws_call>(ch, loop_);
    impl->hold(std::move(place));
    py::ref call = new_ws_call_object(std::move(impl));
    py::ref receive = call ? ws_bound(call.get(), "receive") : py::ref{};
    py::ref send = call ? ws_bound(call.get(), "send") : py::ref{};
    py::ref done = call ? ws_bound(call.get(), "_done") : py::ref{};
    if (!scope || !receive || !send || !done || !spawn(scope.get(), receive.get(), send.get(), done.get())) {
        log::error("cannot start the ASGI app for websocket " + ch->head().target + ":");
        py::print_exception();
        ch->command({net::ws_command::deny, {}, {}, {}, 500, {}, 1000, {}});
    }
}

} // namespace trestle::asgi
