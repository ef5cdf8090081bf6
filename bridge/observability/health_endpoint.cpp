#include "bridge/observability/health_endpoint.hpp"

#include "bridge/net/app_port.hpp"
#include "bridge/net/http_util.hpp"

namespace trestle::health {

bool endpoint::submit(std::shared_ptr<net::app_port> ex) {
    const net::request_head& h = ex->head();
    std::string_view rest = h.routed.rest();
    unsigned status;
    std::string_view body;
    std::string_view extra = "Cache-Control: no-store\r\n";
    if (h.method != "GET" && h.method != "HEAD") {
        status = 405;
        extra = "Allow: GET, HEAD\r\n";
    } else if (rest == "/live") {
        status = 200;
        body = "live\n";
    } else if (rest.empty() || rest == "/" || rest == "/ready") {
        bool draining = unready_.load(std::memory_order_relaxed);
        status = draining ? 503 : 200;
        body = draining ? "draining\n" : "ready\n";
    } else {
        status = 404;
    }
    std::string r = body.empty() ? net::simple_response(status, server_, !h.keep_alive, extra, h.head_method)
                                 : net::text_response(status, "text/plain; charset=utf-8", body, server_,
                                                      !h.keep_alive, extra, h.head_method);
    if (!body.empty() && !h.head_method) ex->add_body_bytes(body.size());
    ex->set_status(status);
    ex->finish(h.keep_alive, r);
    return true;
}

} // namespace trestle::health
