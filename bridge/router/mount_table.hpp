#pragma once
// The mount table: the longest prefix wins, matching whole path segments
// (/v2 matches /v2 and /v2/x, never /v20). The root app is mounted at "";
// without one, paths no mount claims get 404.
// Each mount's handler strips its prefix itself: SCRIPT_NAME for WSGI,
// root_path for ASGI.
#include "adapters/handler.hpp"

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace trestle::router {

// "/v2/" -> "/v2"; "/" -> "". Returns false for prefixes that do not start
// with '/' or hold characters that cannot appear in a path.
bool normalize_prefix(std::string& prefix);

class mount_table : public handler {
public:
    // The root handler (may be null) serves everything no other mount claims.
    mount_table(handler* root, const std::string& server_header);
    void add(std::string prefix, handler& h);   // prefix already normalized

    handler& match(std::string_view path) const;
    bool submit(std::shared_ptr<net::exchange> ex) override;
    bool accepts_websocket(const net::request_head& head) const override;
    bool watches_disconnect(const net::request_head& head) const override;
    bool buffers_body(const net::request_head& head) const override;
    void submit_websocket(std::shared_ptr<net::ws_channel> ch) override;
    bool tunnels_upgrade(const net::request_head& head) const override;
    boost::asio::awaitable<void> tunnel(std::shared_ptr<net::exchange> ex, net::upgraded_client& client) override;

private:
    struct mount {
        std::string prefix;
        handler* h;
    };
    std::vector<mount> mounts_;   // longest prefix first
    std::unique_ptr<handler> not_found_;   // before root_, which may refer to it
    handler& root_;
};

} // namespace trestle::router
