#pragma once
// An upstream of a proxy mount as written in the config:
// http://HOST[:PORT][/PATH]. Pure parsing; resolving HOST is the handler's.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace trestle::proxy {

struct upstream_url {
    std::string host;                  // a name or an address; IPv6 without brackets
    std::uint16_t port = 80;
    std::optional<std::string> path;   // unset: the request URI goes upstream unchanged
    std::string authority;             // Host field value: host[:port], IPv6 bracketed, :80 left out
};

// False with `why` set (one line, naming the URL) for anything but a plain
// http URL: no https, userinfo, query or fragment.
bool parse_upstream_url(std::string_view text, upstream_url& out, std::string& why);

} // namespace trestle::proxy
