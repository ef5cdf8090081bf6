#include "adapters/proxy/upstream_url.hpp"

#include <cctype>
#include <charconv>

namespace trestle::proxy {

namespace {

bool is_host_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~';
}

bool is_path_char(unsigned char c) {
    // RFC 3986 pchar plus '/', with '%' for escapes; no '?' or '#'.
    if (c <= 0x20 || c >= 0x7f) return false;
    return c != '?' && c != '#' && c != '"' && c != '<' && c != '>' && c != '\\' && c != '^' && c != '`' &&
           c != '{' && c != '|' && c != '}';
}

} // namespace

bool parse_upstream_url(std::string_view text, upstream_url& out, std::string& why) {
    auto fail = [&](const std::string& what) {
        why = "proxy upstream '" + std::string(text) + "': " + what;
        return false;
    };
    constexpr std::string_view scheme = "http://";
    if (text.starts_with("https://")) return fail("https upstreams are not supported (use http://)");
    if (!text.starts_with(scheme)) return fail("expected http://HOST[:PORT][/PATH]");
    std::string_view rest = text.substr(scheme.size());
    std::size_t slash = rest.find('/');
    std::string_view auth = rest.substr(0, slash);
    std::string_view path = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);
    if (auth.find('@') != std::string_view::npos) return fail("user info is not supported");
    if (rest.find_first_of("?#") != std::string_view::npos) return fail("a query or fragment is not allowed");

    upstream_url u;
    std::string_view port;
    if (auth.starts_with("[")) {
        std::size_t close = auth.find(']');
        if (close == std::string_view::npos) return fail("unclosed '[' in the host");
        u.host = std::string(auth.substr(1, close - 1));
        for (char c : u.host)
            if (!(std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.'))
                return fail("bad IPv6 address");
        if (u.host.find(':') == std::string::npos) return fail("bad IPv6 address");
        std::string_view after = auth.substr(close + 1);
        if (!after.empty()) {
            if (after[0] != ':') return fail("expected ':PORT' after the IPv6 address");
            port = after.substr(1);
            if (port.empty()) return fail("empty port");
        }
    } else {
        std::size_t colon = auth.find(':');
        u.host = std::string(auth.substr(0, colon));
        if (colon != std::string_view::npos) {
            port = auth.substr(colon + 1);
            if (port.empty()) return fail("empty port");
        }
        for (char c : u.host)
            if (!is_host_char(c)) return fail("bad character in the host");
    }
    if (u.host.empty()) return fail("no host");
    if (!port.empty()) {
        unsigned value = 0;
        auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
        if (ec != std::errc{} || p != port.data() + port.size() || value == 0 || value > 65535)
            return fail("bad port '" + std::string(port) + "'");
        u.port = static_cast<std::uint16_t>(value);
    }
    for (unsigned char c : path)
        if (!is_path_char(c)) return fail("bad character in the path");
    if (!path.empty()) u.path = std::string(path);

    bool v6 = u.host.find(':') != std::string::npos;
    u.authority = v6 ? "[" + u.host + "]" : u.host;
    if (u.port != 80) u.authority += ":" + std::to_string(u.port);
    out = std::move(u);
    return true;
}

} // namespace trestle::proxy
