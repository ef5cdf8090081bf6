#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace trestle::router { class mount_table; }

namespace trestle::net {

// One received header field, exactly as sent (name case preserved).
struct header_field {
    std::string name;
    std::string value;
    int known = 0;   // boost::beast::http::field value, 0 when unknown
};

// A header field seen in place, in a buffer that outlives the view (a
// response head the proxy relays as soon as it is parsed).
struct field_view {
    std::string_view name;
    std::string_view value;
    int known = 0;   // as in header_field
};

// The request's path as the router resolved it (bridge/net/request_path.hpp):
// decoded once, and split where the mount's prefix ends. Every handler reads
// it here, so none decodes the target or strips its prefix itself.
struct routed_path {
    std::string decoded;         // the whole decoded path ("*" for OPTIONS *)
    std::string_view prefix;     // the mount's prefix, decoded ("" at the root); owned by the router
    std::size_t rest_at = 0;     // where the part under the mount begins in `decoded`

    // What follows the prefix: PATH_INFO, a static file's name ("" or "/...").
    std::string_view rest() const { return std::string_view(decoded).substr(rest_at); }
    // How many '/' separators the prefix spans in `decoded` (a proxy drops
    // as many segments from the raw path).
    std::size_t prefix_segments() const;
};

// The parsed request line and header of one request. Immutable once the
// request is handed to an app.
struct request_head {
    std::string method;
    std::string target;          // as sent: origin-form, absolute-form, '*'
    unsigned version = 11;       // 10 or 11
    std::vector<header_field> headers;
    std::optional<std::uint64_t> content_length;
    bool chunked = false;
    bool keep_alive = true;      // what the client asked for
    bool expect_continue = false;
    bool head_method = false;
    bool upgrade = false;        // Connection: upgrade with an Upgrade field
    routed_path routed;          // set by the router before a handler sees the request

    // A WebSocket opening handshake (RFC 6455 4.1): GET, HTTP/1.1,
    // Upgrade: websocket, Connection: upgrade.
    bool is_websocket() const;

    // The path and query split of `target`, not decoded. For absolute-form
    // targets the scheme and authority are dropped.
    std::string_view path() const;
    std::string_view query() const;
    const std::string* find(std::string_view lower_name) const;
    bool has_body() const { return chunked || (content_length && *content_length > 0); }
};

struct tls_info;

// Where a request came from and where it arrived. Per connection, except
// that a trusted proxy's X-Forwarded-* / Forwarded headers (see
// --forwarded-allow-ips) replace remote_addr/remote_port and scheme for
// that one request; peer_addr always stays the socket's peer.
struct endpoint_info {
    // The mount table of the listener that accepted the connection, when it
    // is not the server's (--metrics-bind); null: server_context::router.
    const router::mount_table* router = nullptr;
    std::string remote_addr;
    std::string remote_port;
    std::string server_name;
    std::string server_port;
    bool is_unix = false;
    std::string peer_addr;       // the TCP peer ("" for a unix socket)
    std::string scheme = "http"; // "https" over TLS, or when a trusted proxy says so
    bool trusted_peer = false;   // the peer is in --forwarded-allow-ips
    std::shared_ptr<const tls_info> tls;   // the connection's TLS, if it has any (tls_io.hpp)
};

} // namespace trestle::net
