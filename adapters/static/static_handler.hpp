#pragma once
// A static-file mount: answered on the io thread that read the request, with
// no Python involved (see docs/configuration.md, "Static mounts").
#include "adapters/handler.hpp"
#include "bridge/config/options.hpp"

#include <string>

namespace trestle::net { struct server_context; }

namespace trestle::statics {

class static_handler : public handler {
public:
    // Throws std::runtime_error (one line, no file:line) when the root is
    // not a readable directory.
    static_handler(const static_mount_options& opt, net::server_context& ctx, std::string prefix);
    bool submit(std::shared_ptr<net::exchange> ex) override;

private:
    static_mount_options opt_;
    net::server_context& ctx_;
    std::string prefix_;
};

} // namespace trestle::statics
