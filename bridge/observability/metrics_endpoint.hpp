#pragma once
// The handler behind --metrics-path: the registry's text format, to the
// clients of --metrics-allow only (checked against the connection's peer,
// never a forwarded address); 403 to anyone else, 405 for a method other
// than GET or HEAD. It answers on the io thread and never touches Python.
#include "bridge/core/handler.hpp"
#include "bridge/net/forwarded.hpp"

#include <string>

namespace trestle::metrics {

class registry;

class endpoint final : public handler {
public:
    endpoint(registry& r, net::trusted_proxies allow, std::string server_header)
        : r_(r), allow_(std::move(allow)), server_(std::move(server_header)) {}
    duties duties_for(const net::request_head&) const override { return {}; }
    bool submit(std::shared_ptr<net::app_port> ex) override;

private:
    registry& r_;
    net::trusted_proxies allow_;
    std::string server_;
};

} // namespace trestle::metrics
