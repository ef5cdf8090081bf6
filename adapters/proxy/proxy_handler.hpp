#pragma once
// A proxy mount: requests under the prefix go to upstream HTTP/1.1 servers,
// bodies streamed both ways (see docs/configuration.md, "Proxy mounts").
#include "adapters/handler.hpp"
#include "bridge/config/options.hpp"

#include <string>

namespace trestle::net { struct server_context; }

namespace trestle::proxy {

class proxy_handler : public handler {
public:
    // Throws std::runtime_error (one line) for an upstream URL it cannot use.
    proxy_handler(const proxy_mount_options& opt, net::server_context& ctx, std::string prefix);
    ~proxy_handler() override;
    bool submit(std::shared_ptr<net::exchange> ex) override;

private:
    proxy_mount_options opt_;
    net::server_context& ctx_;
    std::string prefix_;
};

} // namespace trestle::proxy
