// PLACEHOLDER until the static-file handler lands: answers 501.
#include "adapters/static/static_handler.hpp"

#include "bridge/net/exchange.hpp"
#include "bridge/net/http_util.hpp"
#include "bridge/net/server_context.hpp"

namespace trestle::statics {

static_handler::static_handler(const static_mount_options& opt, net::server_context& ctx, std::string prefix)
    : opt_(opt), ctx_(ctx), prefix_(std::move(prefix)) {}

bool static_handler::submit(std::shared_ptr<net::exchange> ex) {
    std::string r = net::simple_response(501, ctx_.server_header, false);
    ex->finish(false, r);
    return true;
}

} // namespace trestle::statics
