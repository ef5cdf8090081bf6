#pragma once
// A proxy mount: requests under the prefix go to upstream HTTP/1.1 servers,
// bodies streamed both ways, upgrades (WebSocket) tunnelled, all on the io
// thread of the client's connection (see docs/configuration.md, "Proxy
// mounts").
#include "bridge/core/handler.hpp"
#include "bridge/core/services.hpp"
#include "bridge/config/options.hpp"

#include <memory>
#include <string>

namespace trestle::net { struct server_context; }
namespace trestle::metrics { class registry; }

namespace trestle::proxy {

struct mount_state;

class proxy_handler : public handler {
public:
    // Parses and resolves every upstream. Throws std::runtime_error (one
    // line) for a URL it cannot use or a host that does not resolve.
    proxy_handler(const proxy_mount_options& opt, net::server_context& ctx, std::string prefix);
    ~proxy_handler() override;
    // The connection notices a client that leaves while the upstream
    // thinks, except during an upgrade, which it may tunnel.
    duties duties_for(const net::request_head& head) const override;
    bool submit(std::shared_ptr<net::app_port> ex) override;
    boost::asio::awaitable<void> tunnel(std::shared_ptr<net::app_port> ex, net::upgraded_client& client) override;

    // The upstreams' health, read at each scrape (`shadow`: the mount's shadow).
    void add_metrics(metrics::registry& stats, bool shadow) const;

private:
    std::shared_ptr<mount_state> state_;   // shared with the calls in flight
};

// The factory of every adapter (bridge/core/services.hpp). Throws
// mount_error (status 2) for an upstream it cannot use.
std::unique_ptr<handler> make_handler(const mount_source& m, const services& s);

} // namespace trestle::proxy
