#pragma once
// Runs an ASGI 3 app on the worker's event loop: each request becomes a
// task, with receive and send implemented in C++ over the exchange.
#include "adapters/asgi/scope.hpp"
#include "adapters/handler.hpp"
#include "bridge/python/ref.hpp"

namespace trestle::runtime { class loop_thread; }
namespace trestle::net { struct server_context; class exchange; }

namespace trestle::asgi {

class asgi_handler : public handler {
public:
    // Requires the GIL and a running loop.
    asgi_handler(py::ref app, runtime::loop_thread& loop, const net::server_context& ctx,
                 std::string root_path = {});
    ~asgi_handler() override;
    bool submit(std::shared_ptr<net::exchange> ex) override;

    scope_builder& scopes() { return scopes_; }
    runtime::loop_thread& loop() { return loop_; }
    const net::server_context& context() const { return ctx_; }

private:
    void start(std::shared_ptr<net::exchange> ex);   // on the loop thread

    py::ref app_;
    runtime::loop_thread& loop_;
    const net::server_context& ctx_;
    scope_builder scopes_;
    py::ref create_task_;
};

// Creates the Python types of this adapter. Once, with the GIL.
void init_types();

} // namespace trestle::asgi
