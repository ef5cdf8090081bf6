// PLACEHOLDER until the proxy handler lands: answers 501.
#include "adapters/proxy/proxy_handler.hpp"

#include "bridge/net/exchange.hpp"
#include "bridge/net/http_util.hpp"
#include "bridge/net/server_context.hpp"

namespace trestle::proxy {

proxy_handler::proxy_handler(const proxy_mount_options& opt, net::server_context& ctx, std::string prefix)
    : opt_(opt), ctx_(ctx), prefix_(std::move(prefix)) {}

proxy_handler::~proxy_handler() = default;

bool proxy_handler::submit(std::shared_ptr<net::exchange> ex) {
    std::string r = net::simple_response(501, ctx_.server_header, false);
    ex->finish(false, r);
    return true;
}

} // namespace trestle::proxy
