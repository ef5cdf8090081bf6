#pragma once
// One proxied request, run as a coroutine on the io thread of its client
// connection: pick an upstream, take a pooled connection or open one, send
// the rewritten head and stream the body up while the response streams
// back down through the exchange. No Python, no pool thread.
#include "adapters/proxy/balancer.hpp"
#include "adapters/proxy/upstream_url.hpp"
#include "bridge/config/options.hpp"

#include <boost/asio/ip/tcp.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace trestle::net { class app_port; struct server_context; }

namespace trestle::proxy {

struct upstream {
    upstream_url url;
    std::vector<boost::asio::ip::tcp::endpoint> endpoints;   // resolved at startup, tried in order
    std::uint64_t pool_id = 0;                                // names its idle connections per io thread
};

// What every request of one mount shares.
struct mount_state {
    mount_state(const proxy_mount_options& o, const net::server_context& c, std::string p,
                std::vector<upstream> ups)
        : opt(o), ctx(c), prefix(std::move(p)), upstreams(std::move(ups)),
          bal(upstreams.size(), o.max_fails, o.fail_timeout) {}
    proxy_mount_options opt;
    const net::server_context& ctx;
    std::string prefix;
    std::vector<upstream> upstreams;
    balancer bal;
};

// Starts the call on the exchange's io executor; it finishes the exchange.
void start_call(std::shared_ptr<net::app_port> ex, std::shared_ptr<mount_state> m);

} // namespace trestle::proxy
