#pragma once
// Runs an ASGI 3 app on the worker's event loop: each request becomes a
// task, with receive and send implemented in C++ over the exchange.
#include "adapters/asgi/scope.hpp"
#include "bridge/core/handler.hpp"
#include "bridge/core/services.hpp"
#include "bridge/python/ref.hpp"

namespace trestle::runtime { class loop_thread; }
namespace trestle::net { struct server_context; class app_port; }

namespace trestle::asgi {

class asgi_handler : public handler {
public:
    // Requires the GIL and a running loop.
    asgi_handler(py::ref app, runtime::loop_thread& loop, const net::server_context& ctx,
                 std::string root_path = {});
    ~asgi_handler() override;
    duties duties_for(const net::request_head&) const override {
        return {.watch_disconnect = true, .websocket = true};
    }
    bool submit(std::shared_ptr<net::app_port> ex) override;
    bool submit_websocket(std::shared_ptr<net::ws_channel> ch) override;

    scope_builder& scopes() { return scopes_; }
    runtime::loop_thread& loop() { return loop_; }
    const net::server_context& context() const { return ctx_; }

private:
    void start(std::shared_ptr<net::app_port> ex);   // on the loop thread
    void start_websocket(std::shared_ptr<net::ws_channel> ch);
    // Runs app(scope, receive, send) as a task whose completion calls
    // `done`. Returns the task, or null with an exception set.
    py::ref spawn(PyObject* scope, PyObject* receive, PyObject* send, PyObject* done);

    py::ref app_;
    runtime::loop_thread& loop_;
    const net::server_context& ctx_;
    scope_builder scopes_;
    py::ref create_task_;
    // asyncio.Task and the arguments that make one without a task factory:
    // a fixed name spares the "Task-<n>" formatting of every request.
    py::ref task_type_, task_kwnames_;
};

// The factory of every adapter (bridge/core/services.hpp). Requires the GIL,
// a loaded app and the running loop. Throws mount_error (status 1, with the
// Python exception set) when the app cannot be inspected.
std::unique_ptr<handler> make_handler(const mount_source& m, const services& s);

// Creates the Python types of this adapter. Once, with the GIL.
void init_types();

} // namespace trestle::asgi
