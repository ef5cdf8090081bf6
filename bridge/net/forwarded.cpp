#include "bridge/net/forwarded.hpp"

#include <arpa/inet.h>
#include <charconv>
#include <cstring>
#include <optional>
#include <strings.h>

namespace trestle::net {
namespace {

using bytes16 = std::array<unsigned char, 16>;

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

bool iequal(std::string_view a, std::string_view b) {
    return a.size() == b.size() && ::strncasecmp(a.data(), b.data(), a.size()) == 0;
}

// An IPv4 or IPv6 address as 16 bytes, IPv4 mapped into ::ffff:0:0/96.
std::optional<bytes16> parse_ip(std::string_view text, bool* v4 = nullptr) {
    if (text.empty() || text.size() > 45) return std::nullopt;
    char buf[46];
    std::memcpy(buf, text.data(), text.size());
    buf[text.size()] = '\0';
    bytes16 out{};
    unsigned char a4[4];
    if (::inet_pton(AF_INET, buf, a4) == 1) {
        out[10] = out[11] = 0xff;
        std::memcpy(out.data() + 12, a4, 4);
        if (v4) *v4 = true;
        return out;
    }
    if (::inet_pton(AF_INET6, buf, out.data()) == 1) {
        if (v4) *v4 = false;
        return out;
    }
    return std::nullopt;
}

// "1.2.3.4", "1.2.3.4:80", "[::1]", "[::1]:80" or "::1" -> host and port.
void split_host_port(std::string_view s, std::string_view& host, std::string_view& port) {
    port = {};
    if (!s.empty() && s.front() == '[') {
        auto close = s.find(']');
        if (close == std::string_view::npos) {
            host = s;
            return;
        }
        host = s.substr(1, close - 1);
        if (close + 1 < s.size() && s[close + 1] == ':') port = s.substr(close + 2);
        return;
    }
    auto colon = s.find(':');
    if (colon != std::string_view::npos && s.find(':', colon + 1) == std::string_view::npos) {
        host = s.substr(0, colon);
        port = s.substr(colon + 1);
        return;
    }
    host = s;
}

bool valid_port(std::string_view p) {
    unsigned v = 0;
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
    return ec == std::errc() && end == p.data() + p.size() && v <= 65535;
}

// Splits on commas (no quoting: X-Forwarded-* values hold none).
std::vector<std::string_view> split_list(std::string_view s) {
    std::vector<std::string_view> out;
    while (true) {
        auto comma = s.find(',');
        out.push_back(trim(s.substr(0, comma)));
        if (comma == std::string_view::npos) break;
        s.remove_prefix(comma + 1);
    }
    return out;
}

// Every value of a header, joined as one list (repeated fields concatenate).
std::string joined(const request_head& h, std::string_view lower_name) {
    std::string out;
    for (const auto& f : h.headers) {
        if (!iequal(f.name, lower_name)) continue;
        if (!out.empty()) out += ',';
        out += f.value;
    }
    return out;
}

// One hop of a forwarding chain: who it was for, and the scheme it came in on.
struct hop {
    std::string_view node;    // the for= value / X-Forwarded-For entry
    std::string_view proto;   // empty when not said
};

// RFC 7239: elements separated by ',', pairs by ';', values token or
// quoted-string. Quoted values here never hold ',' or ';' that matter for
// node and proto (a quoted IPv6 address with port has neither).
bool parse_forwarded(std::string_view s, std::vector<hop>& hops) {
    for (std::string_view element : split_list(s)) {
        hop hp;
        while (!element.empty()) {
            auto semi = element.find(';');
            std::string_view pair = trim(element.substr(0, semi));
            element = semi == std::string_view::npos ? std::string_view{} : element.substr(semi + 1);
            if (pair.empty()) continue;
            auto eq = pair.find('=');
            if (eq == std::string_view::npos) return false;
            std::string_view name = trim(pair.substr(0, eq));
            std::string_view value = trim(pair.substr(eq + 1));
            if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
            if (iequal(name, "for")) hp.node = value;
            else if (iequal(name, "proto")) hp.proto = value;
        }
        hops.push_back(hp);
    }
    return true;
}

std::optional<std::string> scheme_of(std::string_view proto) {
    if (iequal(proto, "https") || iequal(proto, "wss")) return "https";
    if (iequal(proto, "http") || iequal(proto, "ws")) return "http";
    return std::nullopt;
}

} // namespace

bool trusted_proxies::parse(const std::vector<std::string>& entries, std::string& why) {
    for (const std::string& raw : entries) {
        std::string_view e = trim(raw);
        if (e == "*") {
            any_ = true;
            continue;
        }
        if (e == "unix") {
            unix_ = true;
            continue;
        }
        std::string_view addr = e, len;
        if (auto slash = e.find('/'); slash != std::string_view::npos) {
            addr = e.substr(0, slash);
            len = e.substr(slash + 1);
        }
        bool v4 = false;
        auto ip = parse_ip(addr, &v4);
        unsigned bits = v4 ? 32 : 128;
        if (ip && !len.empty()) {
            unsigned b = 0;
            auto [end, ec] = std::from_chars(len.data(), len.data() + len.size(), b);
            if (ec != std::errc() || end != len.data() + len.size() || b > bits) ip.reset();
            bits = b;
        } else if (ip && e.find('/') != std::string_view::npos) {
            ip.reset();
        }
        if (!ip) {
            why = "'" + raw + "' is not an IP address, a CIDR, '*' or 'unix'";
            return false;
        }
        nets_.push_back({*ip, v4 ? bits + 96 : bits});
    }
    return true;
}

bool trusted_proxies::contains(std::string_view text) const {
    if (any_) return true;
    auto ip = parse_ip(text);
    if (!ip) return false;
    for (const net& n : nets_) {
        unsigned full = n.bits / 8, rest = n.bits % 8;
        if (std::memcmp(ip->data(), n.addr.data(), full) != 0) continue;
        if (rest) {
            unsigned char mask = static_cast<unsigned char>(0xff << (8 - rest));
            if (((*ip)[full] & mask) != (n.addr[full] & mask)) continue;
        }
        return true;
    }
    return false;
}

bool trusted_proxies::trusts(const endpoint_info& ep) const {
    if (ep.is_unix) return any_ || unix_;
    return contains(ep.peer_addr);
}

namespace {

// The hop the request came from: walking from the right, the nearest one
// that is not itself a trusted proxy (every entry right of it was written
// by a trusted proxy); the leftmost if all are trusted.
std::size_t client_hop(const std::vector<hop>& hops, const trusted_proxies& trusted) {
    for (std::size_t i = hops.size(); i-- > 0;) {
        std::string_view host, port;
        split_host_port(hops[i].node, host, port);
        if (i > 0 && trusted.contains(host)) continue;
        return i;
    }
    return 0;
}

void set_client(const hop& h, endpoint_info& ep) {
    std::string_view host, port;
    split_host_port(h.node, host, port);
    if (!parse_ip(host)) return;   // "unknown", an obfuscated name: the peer stays
    ep.remote_addr = std::string(host);
    ep.remote_port = !port.empty() && valid_port(port) ? std::string(port) : "0";
}

void set_scheme(std::string_view proto, endpoint_info& ep) {
    if (auto s = scheme_of(proto)) ep.scheme = *s;
}

void apply_rfc7239(const request_head& head, const trusted_proxies& trusted, endpoint_info& ep) {
    std::string fwd = joined(head, "forwarded");
    std::vector<hop> hops;
    if (fwd.empty() || !parse_forwarded(fwd, hops) || hops.empty()) return;   // malformed: believe nothing
    std::size_t chosen = client_hop(hops, trusted);
    set_client(hops[chosen], ep);
    // Its own element's proto, else the nearest one a trusted hop gave.
    for (std::size_t i = chosen; i < hops.size(); ++i) {
        if (hops[i].proto.empty()) continue;
        set_scheme(hops[i].proto, ep);
        break;
    }
}

void apply_x_forwarded(const request_head& head, const trusted_proxies& trusted, endpoint_info& ep) {
    std::string xff = joined(head, "x-forwarded-for");
    std::string xfp = joined(head, "x-forwarded-proto");
    std::vector<std::string_view> protos;
    if (!xfp.empty()) protos = split_list(xfp);
    std::vector<hop> hops;
    if (!xff.empty())
        for (auto node : split_list(xff)) hops.push_back({node, {}});
    std::size_t chosen = hops.empty() ? 0 : client_hop(hops, trusted);
    if (!hops.empty()) set_client(hops[chosen], ep);
    if (protos.empty()) return;
    // Lists of one length were appended to in step: the chosen hop's entry
    // is the scheme its client used. Otherwise nothing but the rightmost
    // entry is known to come from a trusted proxy.
    set_scheme(!hops.empty() && protos.size() == hops.size() ? protos[chosen] : protos.back(), ep);
}

} // namespace

void apply_forwarded(const request_head& head, const trusted_proxies& trusted, endpoint_info& ep) {
    if (trusted.family() == forwarded_family::forwarded) apply_rfc7239(head, trusted, ep);
    else apply_x_forwarded(head, trusted, ep);
}

} // namespace trestle::net
