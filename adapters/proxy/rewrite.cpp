#include "adapters/proxy/rewrite.hpp"

#include "bridge/net/http_util.hpp"
#include "bridge/net/request_path.hpp"

#include <boost/beast/http/field.hpp>
#include <boost/container/small_vector.hpp>

#include <algorithm>

namespace trestle::proxy {

namespace {

using net::ascii_lower;
constexpr auto iequals = net::ascii_iequals;

bool istarts_with(std::string_view s, std::string_view prefix) {
    return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

using field = boost::beast::http::field;

// RFC 9110 7.6.1 plus Proxy-Connection, which some clients still send.
// (Proxy-Authenticate/-Authorization go through: they concern the origin
// here.) Upgrade is hop-by-hop too; the callers handle it first. Every one
// of these names is known to Beast, so the field's code decides.
bool is_hop_by_hop(int known) {
    switch (static_cast<field>(known)) {
    case field::connection:
    case field::keep_alive:
    case field::proxy_connection:
    case field::te:
    case field::trailer:
    case field::transfer_encoding:
    case field::upgrade:
        return true;
    default:
        return false;
    }
}

bool listed(const std::vector<std::string>& tokens, std::string_view name) {
    return std::any_of(tokens.begin(), tokens.end(), [&](const std::string& t) { return iequals(t, name); });
}

// The Connection values among `fields` (rarely more than one).
template <class Fields>
boost::container::small_vector<std::string_view, 2> connection_values(const Fields& fields) {
    boost::container::small_vector<std::string_view, 2> v;
    for (auto& f : fields)
        if (f.known == static_cast<int>(field::connection)) v.push_back(f.value);
    return v;
}

// Fields this hop writes itself, whoever sent them before.
bool is_forwarding(std::string_view n) { return istarts_with(n, "x-forwarded-") || iequals(n, "forwarded"); }
bool is_rewritten_forwarding(std::string_view n) {
    return iequals(n, "x-forwarded-for") || iequals(n, "x-forwarded-proto") || iequals(n, "x-forwarded-host") ||
           iequals(n, "x-forwarded-prefix") || iequals(n, "forwarded");
}

void append_list(std::string& list, std::string_view value) {
    value = trim(value);
    if (value.empty()) return;
    if (!list.empty()) list += ", ";
    list.append(value);
}

void add_field(std::string& out, std::string_view name, std::string_view value) {
    out.append(name);
    out += ": ";
    out.append(value);
    out += "\r\n";
}


// RFC 7239 4, appended: a value that is not a token is a quoted-string.
void append_token_or_quoted(std::string& out, std::string_view v) {
    if (net::is_token(v)) {
        out.append(v);
        return;
    }
    out += '"';
    for (char c : v) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    out += '"';
}

void append_forwarded_node(std::string& out, const std::string& addr) {
    if (addr.empty()) out += "unknown";
    else if (addr.find(':') != std::string::npos) (out += "\"[").append(addr) += "]\"";   // IPv6 (RFC 7239 6)
    else out += addr;
}

std::string token_or_quoted(std::string_view v) {
    std::string s;
    append_token_or_quoted(s, v);
    return s;
}

std::string forwarded_node(const std::string& addr) {
    std::string s;
    append_forwarded_node(s, addr);
    return s;
}

} // namespace

bool has_dot_segment(const net::request_head& h) {
    // The router refused a ".." (and a NUL) already; "." segments remain.
    std::string_view path = h.routed.decoded;
    std::size_t pos = 0;
    while (pos <= path.size()) {
        std::size_t end = path.find('/', pos);
        std::string_view seg = std::string_view(path).substr(pos, end == std::string::npos ? std::string::npos : end - pos);
        if (seg == "." || seg == "..") return true;
        if (end == std::string::npos) break;
        pos = end + 1;
    }
    return false;
}

std::optional<std::string> upstream_target(const net::request_head& h, const std::optional<std::string>& upstream_path) {
    if (h.target == "*") return h.target;   // OPTIONS *
    if (has_dot_segment(h)) return std::nullopt;
    std::string_view path = h.path();
    // The query as sent, '?' included (an empty one too), without a fragment.
    std::string_view t = h.target;
    t = t.substr(0, t.find('#'));
    std::size_t q = t.find('?');
    std::string_view query = q == std::string_view::npos ? std::string_view{} : t.substr(q);

    if (!upstream_path) {
        if (!t.empty() && t[0] == '/') return std::string(t);
        return std::string(path) + std::string(query);   // absolute-form: sent as origin-form
    }
    // The mount matched whole segments of the decoded path; the same number
    // of segments is dropped from the raw one, so what the upstream gets is
    // exactly what lies under the mount, never a piece of its prefix.
    std::string rest = net::raw_rest(path, h.routed.prefix_segments());
    std::string out = *upstream_path;
    if (!rest.empty()) {
        if (out.ends_with('/') && rest.starts_with('/')) rest.erase(0, 1);
        out.append(rest);
    }
    out.append(query);
    return out;
}

bool upgrade_allowed(const net::request_head& h, const std::vector<std::string>& allowed) {
    if (!h.upgrade) return false;
    bool any = false;
    for (auto& f : h.headers) {
        if (!iequals(f.name, "upgrade")) continue;
        std::string_view v = f.value;
        while (!v.empty()) {
            std::size_t comma = v.find(',');
            std::string_view proto = trim(v.substr(0, comma));
            proto = proto.substr(0, proto.find('/'));
            if (!proto.empty()) {
                if (!listed(allowed, proto)) return false;
                any = true;
            }
            if (comma == std::string_view::npos) break;
            v.remove_prefix(comma + 1);
        }
    }
    return any;
}

bool connection_names(std::span<const std::string_view> connection_values, std::string_view name) {
    for (std::string_view v : connection_values) {
        while (!v.empty()) {
            std::size_t comma = v.find(',');
            std::string_view tok = trim(v.substr(0, comma));
            if (!tok.empty() && iequals(tok, name)) return true;
            if (comma == std::string_view::npos) break;
            v.remove_prefix(comma + 1);
        }
    }
    return false;
}

void append_forwarded_element(std::string& out, const net::endpoint_info& ep, const std::string* host) {
    out += "for=";
    append_forwarded_node(out, ep.peer_addr);
    out += ";proto=";
    append_token_or_quoted(out, ep.scheme);
    if (host && !host->empty()) {
        out += ";host=";
        append_token_or_quoted(out, *host);
    }
}

std::string forwarded_element(const net::endpoint_info& ep, const std::string* host) {
    std::string e;
    append_forwarded_element(e, ep, host);
    return e;
}

std::string upstream_request_head(const net::request_head& h, const net::endpoint_info& ep,
                                  std::string_view target, const forward_options& o) {
    auto conn = connection_values(h.headers);
    const std::string* client_host = h.find("host");
    bool trusted = ep.trusted_peer;
    std::string xff, fwd, xfh, xfprefix;
    std::string_view upgrade;

    std::string out;
    out.reserve(512);
    out += h.method;
    out += ' ';
    out.append(target);
    out += " HTTP/1.1\r\nHost: ";
    if (o.preserve_host && client_host) out += *client_host;
    else out.append(o.upstream_host);
    out += "\r\n";

    for (auto& f : h.headers) {
        std::string_view n = f.name;
        if (f.known == static_cast<int>(field::upgrade)) {
            if (upgrade.empty()) upgrade = f.value;
            continue;
        }
        if (is_hop_by_hop(f.known) || (!conn.empty() && connection_names(conn, n))) continue;
        // Set below from what the client sent (the framing) or by this hop.
        // Expect is not passed: the connection answers 100-continue itself.
        if (f.known == static_cast<int>(field::host) || f.known == static_cast<int>(field::content_length) ||
            f.known == static_cast<int>(field::expect))
            continue;
        // As nginx does: a name with '_' could pose as a '-' one once an
        // upstream maps both to one CGI variable (X_Forwarded_For). Beast
        // knows no such name.
        if (f.known == 0 && n.find('_') != std::string_view::npos) continue;
        if ((f.known == 0 || f.known == static_cast<int>(field::forwarded)) && is_forwarding(n)) {
            if (!trusted) continue;
            if (iequals(n, "x-forwarded-for")) { if (!o.rfc7239) append_list(xff, f.value); }
            else if (iequals(n, "forwarded")) { if (o.rfc7239) append_list(fwd, f.value); }
            else if (iequals(n, "x-forwarded-host")) { if (xfh.empty()) xfh = trim(f.value); }
            else if (iequals(n, "x-forwarded-prefix")) { if (xfprefix.empty()) xfprefix = trim(f.value); }
            if (is_rewritten_forwarding(n)) continue;
        }
        add_field(out, n, f.value);
    }

    if (h.chunked) out += "Transfer-Encoding: chunked\r\n";
    else if (h.content_length) add_field(out, "Content-Length", std::to_string(*h.content_length));
    if (o.tunnel && !upgrade.empty()) {
        out += "Connection: upgrade\r\n";
        add_field(out, "Upgrade", upgrade);
    } else if (o.close) {
        out += "Connection: close\r\n";
    }

    // The family not read from the peer starts from the client this hop
    // found in the other one, so an upstream that reads either sees it.
    if (trusted && !ep.remote_addr.empty() && ep.remote_addr != ep.peer_addr) {
        if (o.rfc7239) append_list(xff, ep.remote_addr);
        else append_list(fwd, "for=" + forwarded_node(ep.remote_addr) + ";proto=" + token_or_quoted(ep.scheme));
    }
    if (!ep.peer_addr.empty()) append_list(xff, ep.peer_addr);
    if (!xff.empty()) add_field(out, "X-Forwarded-For", xff);
    add_field(out, "X-Forwarded-Proto", ep.scheme);
    if (!xfh.empty()) add_field(out, "X-Forwarded-Host", xfh);
    else if (client_host && !client_host->empty()) add_field(out, "X-Forwarded-Host", *client_host);
    if (o.prefix_replaced && !o.prefix.empty()) {
        // An outer proxy's stripped prefix comes first: together they are
        // the path the client saw above what the upstream sees.
        while (xfprefix.ends_with('/')) xfprefix.pop_back();
        add_field(out, "X-Forwarded-Prefix", xfprefix + net::encode_path(o.prefix));   // the prefix is decoded
    } else if (!xfprefix.empty()) {
        add_field(out, "X-Forwarded-Prefix", xfprefix);
    }
    out += "Forwarded: ";
    if (!fwd.empty()) out.append(fwd) += ", ";
    append_forwarded_element(out, ep, client_host);
    out += "\r\n\r\n";
    return out;
}

std::string client_response_fields(std::span<const net::field_view> fields) {
    auto conn = connection_values(fields);
    std::string out;
    out.reserve(256);
    for (auto& f : fields) {
        switch (static_cast<field>(f.known)) {
        case field::content_length:
        case field::server:
        case field::date:
            continue;
        default:
            break;
        }
        if (is_hop_by_hop(f.known) || (!conn.empty() && connection_names(conn, f.name))) continue;
        add_field(out, f.name, f.value);
    }
    return out;
}

} // namespace trestle::proxy
