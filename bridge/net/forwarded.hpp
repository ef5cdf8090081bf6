#pragma once
// Trusted proxy headers (--forwarded-allow-ips). Only when the connection's
// peer is trusted does one family of headers set the request's client
// address and scheme: X-Forwarded-For / X-Forwarded-Proto by default (what
// nginx's proxy_add_x_forwarded_for and $scheme write, and what uvicorn and
// gunicorn read), or the standard Forwarded header (RFC 7239) when
// --forwarded-headers says so. The other family is never read: a proxy
// passes on what it does not itself write, so a client could set it.
// The client is found walking the list from the right, skipping trusted
// addresses: the first untrusted one is the client (entries further left
// were written by whoever sent them and prove nothing).
#include "bridge/net/request.hpp"

#include <array>
#include <string>
#include <string_view>
#include <vector>

namespace trestle::net {

// Which header family a trusted proxy writes (--forwarded-headers).
enum class forwarded_family { x_forwarded, forwarded };

class trusted_proxies {
public:
    // Entries: "*" (every peer), "unix" (unix-socket peers), an IPv4 or IPv6
    // address, or a CIDR ("10.0.0.0/8", "fd00::/8"). False with `why` set on
    // the first bad entry.
    bool parse(const std::vector<std::string>& entries, std::string& why);
    bool empty() const { return !any_ && !unix_ && nets_.empty(); }
    bool contains(std::string_view addr) const;   // an address as text
    bool trusts(const endpoint_info& ep) const;   // the connection's peer
    void set_family(forwarded_family f) { family_ = f; }
    forwarded_family family() const { return family_; }

private:
    struct net {
        std::array<unsigned char, 16> addr{};   // IPv4 as ::ffff:a.b.c.d
        unsigned bits = 0;
    };
    bool any_ = false;
    bool unix_ = false;
    forwarded_family family_ = forwarded_family::x_forwarded;
    std::vector<net> nets_;
};

// Rewrites ep.remote_addr/remote_port and ep.scheme from the headers of a
// request that came from a trusted peer (ep.trusted_peer). The port of a
// forwarded client is unknown: remote_port becomes "0" unless given.
// The scheme: with Forwarded, the chosen element's proto (else the nearest
// one to its right, written by a trusted hop). With X-Forwarded-*, the
// X-Forwarded-Proto entry of the chosen hop when the two lists have as many
// entries (each proxy appended to both); otherwise only the rightmost entry,
// the one the nearest proxy wrote (nginx replaces the field with $scheme).
// A client's own value is never taken over a proxy's.
void apply_forwarded(const request_head& head, const trusted_proxies& trusted, endpoint_info& ep);

} // namespace trestle::net
