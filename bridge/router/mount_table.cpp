#include "bridge/router/mount_table.hpp"

#include "bridge/net/exchange.hpp"
#include "bridge/net/http_util.hpp"
#include "bridge/net/request_path.hpp"
#include "bridge/net/ws_channel.hpp"

#include <algorithm>

namespace trestle::router {

bool normalize_prefix(std::string& p, std::string& why) { return net::decode_prefix(p, why); }

namespace {

// Answers every request with one status: 404 at the root of a table with
// no root app, 400 for a path no mount may see.
class fixed_status final : public handler {
public:
    fixed_status(unsigned status, std::string server_header) : status_(status), server_(std::move(server_header)) {}
    bool submit(std::shared_ptr<net::exchange> ex) override {
        bool keep = ex->head().keep_alive;
        std::string r = net::simple_response(status_, server_, !keep, {}, ex->head().head_method);
        ex->set_status(status_);
        ex->finish(keep, r);
        return true;
    }

private:
    unsigned status_;
    std::string server_;
};

handler& root_or_404(handler* root, std::unique_ptr<handler>& holder, const std::string& server_header) {
    if (root) return *root;
    holder = std::make_unique<fixed_status>(404, server_header);
    return *holder;
}

} // namespace

mount_table::mount_table(handler* root, const std::string& server_header)
    : bad_path_(std::make_unique<fixed_status>(400, server_header)),
      root_(root_or_404(root, not_found_, server_header)) {}

void mount_table::add(std::string prefix, handler& h) {
    mounts_.push_back({std::move(prefix), &h});
    std::stable_sort(mounts_.begin(), mounts_.end(),
                     [](const mount& a, const mount& b) { return a.prefix.size() > b.prefix.size(); });
}

handler& mount_table::match(const net::request_head& head) const {
    std::string path;
    if (net::decode_target_path(head, path)) return *bad_path_;
    for (const auto& m : mounts_)
        if (net::match_prefix(path, m.prefix)) return *m.h;
    return root_;
}

bool mount_table::submit(std::shared_ptr<net::exchange> ex) {
    return match(ex->head()).submit(std::move(ex));
}

bool mount_table::accepts_websocket(const net::request_head& head) const {
    return match(head).accepts_websocket(head);
}

bool mount_table::watches_disconnect(const net::request_head& head) const {
    return match(head).watches_disconnect(head);
}

bool mount_table::buffers_body(const net::request_head& head) const {
    return match(head).buffers_body(head);
}

void mount_table::submit_websocket(std::shared_ptr<net::ws_channel> ch) {
    match(ch->head()).submit_websocket(std::move(ch));
}

bool mount_table::tunnels_upgrade(const net::request_head& head) const {
    return match(head).tunnels_upgrade(head);
}

boost::asio::awaitable<void> mount_table::tunnel(std::shared_ptr<net::exchange> ex, net::upgraded_client& client) {
    handler& h = match(ex->head());
    co_await h.tunnel(std::move(ex), client);
}

} // namespace trestle::router
