#pragma once
// The handler behind --dashboard PATH: a live view of the metrics registry
// and of shadow mode, for people rather than for Prometheus.
//   PATH, PATH/   the page (dashboard.html, embedded at build time: no CDN,
//                 works offline);
//   PATH/events   Server-Sent Events: one event at once, then one a second,
//                 each one line of JSON {"t", "metrics", "shadow"}; ends when
//                 the client leaves or a graceful stop begins, so an open
//                 page never holds the drain;
//   PATH/data     the same JSON once;
//   PATH/shadow   the shadow JSON alone.
// Readers: the peers of --dashboard-allow, or anyone with --dashboard-token
// (Authorization: Bearer, or ?token=, for EventSource cannot set headers);
// 403 to others, 405 for a method other than GET or HEAD, 404 under PATH.
// Everything runs on the io thread and never touches Python.
#include "bridge/core/handler.hpp"
#include "bridge/net/forwarded.hpp"

#include <boost/asio/awaitable.hpp>

#include <functional>
#include <string>
#include <string_view>

namespace trestle::net { struct server_context; }
namespace trestle::metrics { class registry; }

namespace trestle::dashboard {

// The shadow JSON ({"mounts": [...], "mismatches": [...]}), called on an io
// thread for each event and request: it must be thread-safe and quick.
using shadow_source = std::function<std::string()>;

// What a provider returns while no mount has a shadow.
inline constexpr std::string_view no_shadow = R"({"mounts":[],"mismatches":[]})";

struct settings {
    net::trusted_proxies allow;
    std::string token;   // empty: the allow-list only
};

class endpoint final : public handler {
public:
    endpoint(metrics::registry& r, settings s, shadow_source shadow, const net::server_context& ctx)
        : r_(r), s_(std::move(s)), shadow_(std::move(shadow)), ctx_(ctx) {}
    // The events stream must end when its client leaves.
    duties duties_for(const net::request_head&) const override { return {.watch_disconnect = true}; }
    bool submit(std::shared_ptr<net::app_port> ex) override;

private:
    bool may_read(const net::app_port& ex) const;
    std::string snapshot();
    boost::asio::awaitable<void> stream(std::shared_ptr<net::app_port> ex);

    metrics::registry& r_;
    settings s_;
    shadow_source shadow_;
    const net::server_context& ctx_;
};

// ---- pieces with no I/O (tests/unit/bridge/observability) --------------------

// The token a request brings: "Authorization: Bearer T", else the query's
// token=T (percent-decoded); empty if none.
std::string request_token(const net::request_head& h);
// Equal, in a time that depends on `given`'s length only.
bool token_equals(std::string_view given, std::string_view expected);
// `s` as a JSON string literal, quotes included (control characters as
// \uXXXX, so the result is one line; a byte that is not UTF-8 as \u00NN).
void append_json_string(std::string& out, std::string_view s);
// {"t":T,"metrics":"...","shadow":SHADOW}: `shadow` is JSON already.
std::string data_json(double unix_seconds, std::string_view metrics_text, std::string_view shadow);
// One SSE event carrying `data` (each of its lines a data: field).
std::string sse_event(std::string_view data);

// The page, from dashboard.html (generated source).
std::string_view page();

} // namespace trestle::dashboard
