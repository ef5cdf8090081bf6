#include "adapters/proxy/proxy_handler.hpp"

#include "adapters/proxy/proxy_call.hpp"
#include "adapters/proxy/rewrite.hpp"
#include "adapters/proxy/tunnel.hpp"
#include "bridge/net/app_port.hpp"
#include "bridge/net/server_context.hpp"
#include "bridge/observability/metrics.hpp"

#include <boost/asio/io_context.hpp>

#include <atomic>
#include <stdexcept>

namespace trestle::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

std::atomic<std::uint64_t> next_pool_id{1};

// Once, at startup, as nginx resolves a proxy_pass host.
std::vector<tcp::endpoint> resolve(const std::string& text, const upstream_url& u) {
    asio::io_context io;
    tcp::resolver r(io);
    boost::system::error_code ec;
    auto results = r.resolve(u.host, std::to_string(u.port), tcp::resolver::numeric_service, ec);
    if (ec || results.empty())
        throw std::runtime_error("proxy upstream '" + text + "': cannot resolve '" + u.host + "': " +
                                 (ec ? ec.message() : "no address"));
    std::vector<tcp::endpoint> eps;
    for (auto& e : results) eps.push_back(e.endpoint());
    return eps;
}

} // namespace

std::unique_ptr<handler> make_handler(const mount_source& m, const services& s) {
    std::unique_ptr<proxy_handler> h;
    try {
        h = std::make_unique<proxy_handler>(m.spec.proxy, s.ctx, m.spec.prefix);
    } catch (const std::runtime_error& e) {
        throw mount_error(2, e.what());
    }
    if (auto* stats = metrics::current()) h->add_metrics(*stats, m.spec.shadow_target);
    return h;
}

void proxy_handler::add_metrics(metrics::registry& stats, bool shadow) const {
    // Read at a scrape; the mount's state may be gone by then only if the
    // server is, but a weak reference costs nothing.
    std::weak_ptr<mount_state> weak = state_;
    for (std::size_t i = 0; i < state_->upstreams.size(); ++i) {
        std::string labels = "mount=\"" + metrics::label_value(state_->prefix.empty() ? "/" : state_->prefix) +
                             "\",upstream=\"" + metrics::label_value(state_->opt.upstreams[i]) + "\"";
        if (shadow) labels += ",role=\"shadow\"";
        stats.add_value("trestle_proxy_upstream_up",
                        "1 while a proxy mount's upstream takes requests, 0 while it is ejected (max_fails, fail_timeout).",
                        "gauge", labels, [weak, i] {
                            auto st = weak.lock();
                            return st && !st->bal.ejected(i, std::chrono::steady_clock::now()) ? 1.0 : 0.0;
                        });
        stats.add_value("trestle_proxy_upstream_failures_total",
                        "Requests to a proxy mount's upstream that failed (no connection, a reset, a timeout, a bad "
                        "response).",
                        "counter", labels, [weak, i] {
                            auto st = weak.lock();
                            return st ? static_cast<double>(st->bal.failures(i)) : 0.0;
                        });
    }
}

proxy_handler::proxy_handler(const proxy_mount_options& opt, net::server_context& ctx, std::string prefix) {
    if (opt.upstreams.empty()) throw std::runtime_error("a proxy mount needs at least one upstream URL");
    std::vector<upstream> ups;
    for (const auto& text : opt.upstreams) {
        upstream u;
        std::string why;
        if (!parse_upstream_url(text, u.url, why)) throw std::runtime_error(why);
        u.endpoints = resolve(text, u.url);
        u.pool_id = next_pool_id++;
        ups.push_back(std::move(u));
    }
    state_ = std::make_shared<mount_state>(opt, ctx, std::move(prefix), std::move(ups));
}

proxy_handler::~proxy_handler() = default;

bool proxy_handler::submit(std::shared_ptr<net::app_port> ex) {
    start_call(std::move(ex), state_);
    return true;
}

duties proxy_handler::duties_for(const net::request_head& head) const {
    // Only the protocols the mount allows (websocket by default): an h2c
    // upstream that switched would take the client past the prefix mapping
    // to the whole upstream. Any other Upgrade goes as a plain request.
    bool tunnel = upgrade_allowed(head, state_->opt.upgrades);
    // No watch during an upgrade: its 101 must wake the connection, which
    // then hands its socket over (see tunnel()), not wait for the client.
    return {.watch_disconnect = !tunnel, .tunnel_upgrade = tunnel};
}

asio::awaitable<void> proxy_handler::tunnel(std::shared_ptr<net::app_port> ex, net::upgraded_client& client) {
    std::optional<upgraded_upstream> up = claim_upgrade(ex.get());
    if (!up || ex->client_gone()) co_return;
    co_await splice(client, std::move(*up), state_->opt.read_timeout);
}

} // namespace trestle::proxy
