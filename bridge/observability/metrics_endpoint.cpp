#include "bridge/observability/metrics_endpoint.hpp"

#include "bridge/net/app_port.hpp"
#include "bridge/net/http_util.hpp"
#include "bridge/observability/metrics.hpp"

namespace trestle::metrics {

bool endpoint::submit(std::shared_ptr<net::app_port> ex) {
    const net::request_head& h = ex->head();
    bool keep = h.keep_alive;
    unsigned status = 200;
    if (!allow_.trusts(ex->endpoint())) status = 403;
    else if (h.method != "GET" && h.method != "HEAD") status = 405;
    else if (!h.routed.rest().empty() && h.routed.rest() != "/") status = 404;
    if (status != 200) {
        std::string r = net::simple_response(status, server_, !keep, status == 405 ? "Allow: GET, HEAD\r\n" : "",
                                             h.head_method);
        ex->set_status(status);
        ex->finish(keep, r);
        return true;
    }
    std::string body = r_.render();
    std::string r = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                    "Cache-Control: no-store\r\nDate: ";
    r += net::http_date();
    r += "\r\n";
    if (!server_.empty()) r += "Server: " + server_ + "\r\n";
    r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    if (!keep) r += "Connection: close\r\n";
    r += "\r\n";
    if (!h.head_method) {
        r += body;
        ex->add_body_bytes(body.size());
    }
    ex->set_status(200);
    ex->finish(keep, r);
    return true;
}

} // namespace trestle::metrics
