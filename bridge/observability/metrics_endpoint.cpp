#include "bridge/observability/metrics_endpoint.hpp"

#include "bridge/net/app_port.hpp"
#include "bridge/net/http_util.hpp"
#include "bridge/observability/metrics.hpp"

namespace trestle::metrics {

bool endpoint::submit(std::shared_ptr<net::app_port> ex) {
    const net::request_head& h = ex->head();
    unsigned status = 200;
    if (!allow_.trusts(ex->endpoint())) status = 403;
    else if (h.method != "GET" && h.method != "HEAD") status = 405;
    else if (!h.routed.rest().empty() && h.routed.rest() != "/") status = 404;
    std::string r;
    if (status != 200) {
        r = net::simple_response(status, server_, !h.keep_alive, status == 405 ? "Allow: GET, HEAD\r\n" : "",
                                 h.head_method);
    } else {
        std::string body = r_.render();
        r = net::text_response(200, "text/plain; version=0.0.4; charset=utf-8", body, server_, !h.keep_alive,
                               "Cache-Control: no-store\r\n", h.head_method);
        if (!h.head_method) ex->add_body_bytes(body.size());
    }
    ex->set_status(status);
    ex->finish(h.keep_alive, r);
    return true;
}

} // namespace trestle::metrics
