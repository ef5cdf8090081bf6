#pragma once
// What a proxy mount changes in the messages it relays, as pure functions:
// the request-target sent upstream (nginx's proxy_pass path rules), the
// request head (hop-by-hop fields out, Host, framing, X-Forwarded-* and
// Forwarded in) and the fields of the response passed back.
#include "bridge/net/request.hpp"

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace trestle::proxy {

// True if a segment of the request's decoded path, as the router left it
// (request_head::routed), is "." or "..", however written (%2e, or between
// %2F): an upstream that resolves them could be led outside what the mount
// maps.
bool has_dot_segment(const net::request_head& h);

// The request-target for the upstream. Without an upstream path the
// request's own origin-form target goes unchanged; with one, the mount
// prefix (as the router split it off the decoded path) is replaced by it ("/billing/x" under "/billing" to "/api" is
// "/api/x"; to "/" it is "/x"), and the rest of the path goes as the
// client wrote it, except that a %2F at its start is written '/'. The query
// is kept as sent. Unset when the path has dot segments (answered 400).
std::optional<std::string> upstream_target(const net::request_head& h, const std::optional<std::string>& upstream_path);

struct forward_options {
    std::string_view prefix;          // the mount prefix, "" at the root
    bool prefix_replaced = false;     // the upstream URL has a path: X-Forwarded-Prefix is sent
    std::string_view upstream_host;   // the Host sent unless preserve_host
    bool preserve_host = false;
    bool tunnel = false;              // keep Upgrade: the upstream may switch protocols
    bool close = false;               // ask the upstream to close after the response
    // The header family a trusted peer's chain is read from and extended in
    // (--forwarded-headers): Forwarded when true, else X-Forwarded-For. The
    // other family's incoming value could be a client's, passed on by the
    // proxy in front: it is dropped and restarts from the client this hop
    // found.
    bool rfc7239 = false;
};

// The request head sent upstream, ending in the blank line: HTTP/1.1,
// hop-by-hop fields and those Connection names dropped, the framing the
// client used (Content-Length as received, or chunked; never both), and
// X-Forwarded-For/-Proto/-Host/-Prefix and Forwarded (RFC 7239) set. A
// trusted peer's chain (of the family in o.rfc7239) is extended; anyone
// else's forwarding headers are dropped.
std::string upstream_request_head(const net::request_head& h, const net::endpoint_info& ep,
                                  std::string_view target, const forward_options& o);

// This hop's Forwarded element: for=...;proto=...[;host=...]; the second
// form appends it to `out`.
std::string forwarded_element(const net::endpoint_info& ep, const std::string* host);
void append_forwarded_element(std::string& out, const net::endpoint_info& ep, const std::string* host);

// The upstream response's fields to pass on, as "Name: value\r\n" lines:
// without hop-by-hop fields and those Connection names, and without
// Content-Length, Server and Date, which the response writer sets. A
// field's `known` (Beast's field code) decides which it is.
std::string client_response_fields(std::span<const net::field_view> fields);

// True if the request asks to upgrade (Connection: upgrade with Upgrade)
// and every protocol its Upgrade field offers is in `allowed` (lower-case
// names; a "/version" is ignored): only then is it relayed as a tunnel.
bool upgrade_allowed(const net::request_head& h, const std::vector<std::string>& allowed);

// True if a token of one of these Connection field values is `name`
// (ASCII case-insensitive): a field the sender marked hop-by-hop.
bool connection_names(std::span<const std::string_view> connection_values, std::string_view name);

} // namespace trestle::proxy
