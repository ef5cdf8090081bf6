#include "bridge/router/mount_table.hpp"

#include "bridge/net/exchange.hpp"
#include "bridge/net/http_util.hpp"
#include "bridge/net/ws_channel.hpp"

#include <algorithm>

namespace trestle::router {

bool normalize_prefix(std::string& p) {
    if (p.empty() || p[0] != '/') return false;
    for (unsigned char c : p)
        if (c <= 0x20 || c == 0x7f || c == '?' || c == '#') return false;
    while (!p.empty() && p.back() == '/') p.pop_back();
    return true;
}

namespace {

// Answers every request 404: the root of a table with no root app.
class not_found final : public handler {
public:
    explicit not_found(std::string server_header) : server_(std::move(server_header)) {}
    bool submit(std::shared_ptr<net::exchange> ex) override {
        bool keep = ex->head().keep_alive;
        std::string r = net::simple_response(404, server_, !keep, {}, ex->head().head_method);
        ex->set_status(404);
        ex->finish(keep, r);
        return true;
    }

private:
    std::string server_;
};

handler& root_or_404(handler* root, std::unique_ptr<handler>& holder, const std::string& server_header) {
    if (root) return *root;
    holder = std::make_unique<not_found>(server_header);
    return *holder;
}

} // namespace

mount_table::mount_table(handler* root, const std::string& server_header)
    : root_(root_or_404(root, not_found_, server_header)) {}

void mount_table::add(std::string prefix, handler& h) {
    mounts_.push_back({std::move(prefix), &h});
    std::stable_sort(mounts_.begin(), mounts_.end(),
                     [](const mount& a, const mount& b) { return a.prefix.size() > b.prefix.size(); });
}

handler& mount_table::match(std::string_view path) const {
    for (const auto& m : mounts_) {
        if (path.size() < m.prefix.size() || path.compare(0, m.prefix.size(), m.prefix) != 0) continue;
        if (path.size() == m.prefix.size() || path[m.prefix.size()] == '/') return *m.h;
    }
    return root_;
}

bool mount_table::submit(std::shared_ptr<net::exchange> ex) {
    return match(ex->head().path()).submit(std::move(ex));
}

bool mount_table::accepts_websocket(const net::request_head& head) const {
    return match(head.path()).accepts_websocket(head);
}

bool mount_table::watches_disconnect(const net::request_head& head) const {
    return match(head.path()).watches_disconnect(head);
}

bool mount_table::buffers_body(const net::request_head& head) const {
    return match(head.path()).buffers_body(head);
}

void mount_table::submit_websocket(std::shared_ptr<net::ws_channel> ch) {
    match(ch->head().path()).submit_websocket(std::move(ch));
}

bool mount_table::tunnels_upgrade(const net::request_head& head) const {
    return match(head.path()).tunnels_upgrade(head);
}

boost::asio::awaitable<void> mount_table::tunnel(std::shared_ptr<net::exchange> ex, net::upgraded_client& client) {
    handler& h = match(ex->head().path());
    co_await h.tunnel(std::move(ex), client);
}

} // namespace trestle::router
