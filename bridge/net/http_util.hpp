#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace trestle::net {

// ASCII case folding for field names and tokens, inline: std::tolower is a
// locale-aware library call per character, and it showed in the profiles of
// the proxy's field filtering and the ASGI scope's header names.
constexpr char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : c; }

constexpr bool ascii_iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
    return true;
}

// RFC 9110 5.6.2: tchar, and a token (a field name, a transfer coding, a
// WebSocket subprotocol, an access-log field): one or more tchars.
constexpr bool is_tchar(char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~': return true;
    default: return false;
    }
}

constexpr bool is_token(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s)
        if (!is_tchar(c)) return false;
    return true;
}

// The current time as an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"),
// formatted at most once per second per thread.
std::string_view http_date();

// Decodes %XX escapes. Invalid escapes are kept as they are, as most servers
// do. Returns false only if a decoded byte is NUL (refused: it cannot appear
// in a CGI variable safely).
bool percent_decode(std::string_view in, std::string& out);

// The value of one hex digit, or -1.
int hex_digit(char c);

// "Not Found" for 404; empty for unknown codes.
std::string_view reason_phrase(unsigned status);

// A complete small response produced by the server itself (errors, 100, 503).
std::string simple_response(unsigned status, std::string_view server_header, bool close,
                            std::string_view extra_headers = {}, bool head_only = false);
// The same with a body and type of the caller's (the metrics, the health checks).
std::string text_response(unsigned status, std::string_view content_type, std::string_view body,
                          std::string_view server_header, bool close, std::string_view extra_headers = {},
                          bool head_only = false);

// A field value or reason phrase an app may send: visible characters, space,
// tab and obs-text (RFC 9110 5.5), so no other control character, which
// strict clients reject and lenient ones may read differently.
bool valid_field_value(std::string_view v);

// What a Transfer-Encoding field value asks for (all its field lines joined
// with ','). The whole value must match the RFC 9110 list grammar:
// transfer-coding = token *( OWS ";" OWS token BWS "=" BWS ( token /
// quoted-string ) ), elements separated by OWS "," OWS. Stricter than the
// list rule in one way: an empty element is malformed, because a parser
// that skips it and one that does not would frame the body differently.
enum class transfer_coding {
    chunked,       // exactly one `chunked`, last, with no parameters
    malformed,     // bad syntax, `chunked` twice, not last, or with parameters
    unsupported,   // well-formed, but a coding other than chunked is applied
};
transfer_coding check_transfer_encoding(std::string_view v);

// True for the hop-by-hop fields of RFC 9110 7.6.1 that an app must not set.
bool is_hop_by_hop(std::string_view name);

} // namespace trestle::net
