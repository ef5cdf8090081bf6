#pragma once
// Runs a WSGI app on the thread pool: one job per request, with the GIL held
// only while Python runs.
#include "bridge/core/handler.hpp"
#include "bridge/core/services.hpp"
#include "adapters/wsgi/environ.hpp"
#include "bridge/python/ref.hpp"

namespace trestle::runtime { class thread_pool; }
namespace trestle::net { struct server_context; class app_port; }

namespace trestle::wsgi {

class wsgi_handler : public handler {
public:
    // Requires the GIL. `app` is the WSGI callable.
    // `buffer_body`: the connection gathers each request's body before the
    // app runs (see handler::buffers_body); false streams it to wsgi.input.
    wsgi_handler(py::ref app, runtime::thread_pool& pool, const net::server_context& ctx,
                 std::string script_name = {}, bool buffer_body = true);
    ~wsgi_handler() override;
    duties duties_for(const net::request_head&) const override { return {.buffer_body = buffer_body_}; }
    bool submit(std::shared_ptr<net::app_port> ex) override;

    // Handles one request on the calling thread, which must hold the GIL.
    void run(net::app_port& ex);

private:
    py::ref app_;
    runtime::thread_pool& pool_;
    const net::server_context& ctx_;
    environ_builder environ_;
    bool buffer_body_;
};

// The factory of every adapter (bridge/core/services.hpp). Requires the GIL
// and a loaded app.
std::unique_ptr<handler> make_handler(const mount_source& m, const services& s);

} // namespace trestle::wsgi
