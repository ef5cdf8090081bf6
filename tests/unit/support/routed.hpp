#pragma once
// Routes a request head as the server does before any handler sees it:
// through a real mount table with one mount at `prefix` ("" for the root),
// which sets head.routed. The tables live for the whole test run, since a
// routed head refers to its mount's prefix.
#include "bridge/core/handler.hpp"
#include "bridge/net/request.hpp"
#include "bridge/router/mount_table.hpp"

#include <map>
#include <memory>
#include <string>

namespace trestle::test_support {

class null_handler final : public handler {
public:
    duties duties_for(const net::request_head&) const override { return {}; }
    bool submit(std::shared_ptr<net::app_port>) override { return false; }
};

// Returns the handler the request reached: the mount's, or another one
// (a 400 for a path no mount may see, a 404 off the mount).
inline handler* route_to_mount(net::request_head& h, const std::string& prefix) {
    static null_handler mounted;
    static std::map<std::string, std::unique_ptr<router::mount_table>> tables;
    auto& t = tables[prefix];
    if (!t) {
        t = std::make_unique<router::mount_table>(prefix.empty() ? &mounted : nullptr, "test");
        if (!prefix.empty()) t->add(prefix, mounted);
    }
    route r = t->resolve(h);
    return r.target == &mounted ? r.target : nullptr;
}

} // namespace trestle::test_support
