#pragma once
// A static-file mount: answered on the io thread that read the request, with
// no Python involved (see docs/configuration.md, "Static mounts").
#include "bridge/core/handler.hpp"
#include "bridge/core/services.hpp"
#include "adapters/static/root_dir.hpp"
#include "bridge/config/options.hpp"

#include <string>

namespace trestle::net { struct server_context; class response_writer; }

namespace trestle::statics {

class mime_types;

class static_handler : public handler {
public:
    // Throws std::runtime_error (one line, no file:line) when the root is
    // not a readable directory.
    static_handler(const static_mount_options& opt, net::server_context& ctx, std::string prefix);
    duties duties_for(const net::request_head&) const override { return {}; }
    bool submit(std::shared_ptr<net::app_port> ex) override;

private:
    void serve(net::app_port& ex, net::response_writer& w) const;

    static_mount_options opt_;
    net::server_context& ctx_;
    std::string prefix_;
    root_dir root_;
    const mime_types& mime_;
};

// The factory of every adapter (bridge/core/services.hpp). Throws
// mount_error (status 2) when the root is not a readable directory.
std::unique_ptr<handler> make_handler(const mount_source& m, const services& s);

} // namespace trestle::statics
