#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace trestle::net {

// One received header field, exactly as sent (name case preserved).
struct header_field {
    std::string name;
    std::string value;
    int known = 0;   // boost::beast::http::field value, 0 when unknown
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

// Where a request came from and where it arrived. Per connection, except
// that a trusted proxy's X-Forwarded-* / Forwarded headers (see
// --forwarded-allow-ips) replace remote_addr/remote_port and scheme for
// that one request; peer_addr always stays the socket's peer.
struct endpoint_info {
    std::string remote_addr;
    std::string remote_port;
    std::string server_name;
    std::string server_port;
    bool is_unix = false;
    std::string peer_addr;       // the TCP peer ("" for a unix socket)
    std::string scheme = "http"; // "https" only when a trusted proxy says so
    bool trusted_peer = false;   // the peer is in --forwarded-allow-ips
};

} // namespace trestle::net
