#include "bridge/router/mount_table.hpp"

#include "bridge/net/app_port.hpp"
#include "bridge/net/http_util.hpp"
#include "bridge/net/request_path.hpp"

#include <algorithm>

namespace trestle::router {

bool normalize_prefix(std::string& p, std::string& why) { return net::decode_prefix(p, why); }

namespace {

// Answers every request with one status: 404 at the root of a table with
// no root app, 400 for a path no mount may see.
class fixed_status final : public handler {
public:
    fixed_status(unsigned status, std::string server_header) : status_(status), server_(std::move(server_header)) {}
    duties duties_for(const net::request_head&) const override { return {}; }
    bool submit(std::shared_ptr<net::app_port> ex) override {
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

mount_table::mount_table(handler* root, const std::string& server_header, std::uint16_t root_metrics_id)
    : bad_path_(std::make_unique<fixed_status>(400, server_header)),
      root_(root_or_404(root, not_found_, server_header)), root_metrics_id_(root ? root_metrics_id : 0) {}

mount_table::~mount_table() = default;

void mount_table::add(std::string prefix, handler& h, std::uint16_t metrics_id) {
    mounts_.push_back({std::move(prefix), &h, metrics_id});
    std::stable_sort(mounts_.begin(), mounts_.end(),
                     [](const mount& a, const mount& b) { return a.prefix.size() > b.prefix.size(); });
}

route mount_table::resolve(net::request_head& head) const {
    net::routed_path& r = head.routed;
    r.prefix = {};
    r.rest_at = 0;
    handler* h = &root_;
    std::uint16_t id = root_metrics_id_;
    if (net::decode_target_path(head, r.decoded)) {
        h = bad_path_.get();
        id = 0;
    } else {
        for (const auto& m : mounts_) {
            if (auto at = net::match_prefix(r.decoded, m.prefix)) {
                h = m.h;
                id = m.metrics_id;
                r.prefix = m.prefix;
                r.rest_at = *at;
                break;
            }
        }
    }
    return {h, h->duties_for(head), id};
}

} // namespace trestle::router
