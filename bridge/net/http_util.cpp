#include "bridge/net/http_util.hpp"
#include "bridge/net/http_date.hpp"
#include "bridge/net/request.hpp"

#include <boost/beast/core/string.hpp>

#include <algorithm>
#include <ctime>

namespace trestle::net {

std::string_view http_date() {
    thread_local std::time_t last = 0;
    thread_local std::string text;
    std::time_t now = std::time(nullptr);
    if (now != last || text.empty()) {
        text = format_http_date(now);   // never strftime: the app may change the locale
        last = now;
    }
    return text;
}

namespace {

// A cursor over a field value for the list grammar.
struct list_reader {
    std::string_view s;
    std::size_t i = 0;

    bool at_end() const { return i == s.size(); }
    char peek() const { return i < s.size() ? s[i] : '\0'; }
    void ows() {
        while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    }
    bool token(std::string_view& out) {
        std::size_t start = i;
        while (i < s.size() && is_tchar(s[i])) ++i;
        out = s.substr(start, i - start);
        return i > start;
    }
    bool quoted_string() {
        if (peek() != '"') return false;
        ++i;
        while (i < s.size()) {
            auto c = static_cast<unsigned char>(s[i++]);
            if (c == '"') return true;
            if (c == '\\') {
                if (i == s.size()) return false;
                c = static_cast<unsigned char>(s[i++]);
                if (c < 0x20 && c != '\t') return false;
                if (c == 0x7f) return false;
                continue;
            }
            if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
        }
        return false;   // no closing quote
    }
};

} // namespace

transfer_coding check_transfer_encoding(std::string_view v) {
    list_reader r{v};
    int chunked = 0;
    bool other = false;
    bool last_is_chunked = false;
    bool chunked_has_params = false;
    r.ows();
    if (r.at_end()) return transfer_coding::malformed;
    for (;;) {
        std::string_view name;
        if (!r.token(name)) return transfer_coding::malformed;   // also an empty element
        bool is_chunked = boost::beast::iequals(name, "chunked");
        bool params = false;
        for (;;) {
            r.ows();
            if (r.peek() != ';') break;
            ++r.i;
            r.ows();
            std::string_view pname, pvalue;
            if (!r.token(pname)) return transfer_coding::malformed;
            r.ows();
            if (r.peek() != '=') return transfer_coding::malformed;
            ++r.i;
            r.ows();
            if (!r.token(pvalue) && !r.quoted_string()) return transfer_coding::malformed;
            params = true;
        }
        chunked += is_chunked ? 1 : 0;
        other = other || !is_chunked;
        chunked_has_params = chunked_has_params || (is_chunked && params);
        last_is_chunked = is_chunked;
        if (r.at_end()) break;
        if (r.peek() != ',') return transfer_coding::malformed;
        ++r.i;
        r.ows();
    }
    // RFC 9112 6.3: chunked must be the final coding, and once (6.1); it
    // takes no parameters (RFC 9112 7).
    if (chunked > 1 || (chunked == 1 && !last_is_chunked) || chunked_has_params) return transfer_coding::malformed;
    // RFC 9112 6.1: a coding the server does not understand is a 501.
    if (other) return transfer_coding::unsupported;
    return transfer_coding::chunked;
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool percent_decode(std::string_view in, std::string& out) {
    out.clear();
    out.reserve(in.size());
    for (std::size_t i = 0; i < in.size(); ++i) {
        char c = in[i];
        if (c == '%' && i + 2 < in.size()) {
            int hi = hex_digit(in[i + 1]), lo = hex_digit(in[i + 2]);
            if (hi >= 0 && lo >= 0) {
                char d = static_cast<char>(hi * 16 + lo);
                if (d == '\0') return false;
                out.push_back(d);
                i += 2;
                continue;
            }
        }
        out.push_back(c);
    }
    return true;
}

std::string_view reason_phrase(unsigned s) {
    switch (s) {
    case 100: return "Continue";
    case 102: return "Processing";
    case 103: return "Early Hints";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 426: return "Upgrade Required";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return {};
    }
}

bool valid_field_value(std::string_view v) {
    for (unsigned char c : v)
        if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
    return true;
}

std::string simple_response(unsigned status, std::string_view server_header, bool close,
                            std::string_view extra_headers, bool head_only) {
    std::string body = std::to_string(status) + " " + std::string(reason_phrase(status)) + "\n";
    return text_response(status, "text/plain; charset=utf-8", body, server_header, close, extra_headers, head_only);
}

std::string text_response(unsigned status, std::string_view content_type, std::string_view body,
                          std::string_view server_header, bool close, std::string_view extra_headers, bool head_only) {
    std::string_view reason = reason_phrase(status);
    std::string r;
    r.reserve(256 + (head_only ? 0 : body.size()));
    r += "HTTP/1.1 ";
    r += std::to_string(status);
    r += ' ';
    r += reason;
    r += "\r\n";
    if (!server_header.empty()) {
        r += "Server: ";
        r += server_header;
        r += "\r\n";
    }
    r += "Date: ";
    r += http_date();
    r += "\r\nContent-Type: ";
    r += content_type;
    r += "\r\nContent-Length: ";
    r += std::to_string(body.size());
    r += "\r\n";
    r += extra_headers;
    if (close) r += "Connection: close\r\n";
    r += "\r\n";
    if (!head_only) r += body;
    return r;
}

bool is_hop_by_hop(std::string_view n) {
    using boost::beast::iequals;
    return iequals(n, "connection") || iequals(n, "keep-alive") || iequals(n, "proxy-authenticate") ||
           iequals(n, "proxy-authorization") || iequals(n, "te") || iequals(n, "trailer") ||
           iequals(n, "trailers") || iequals(n, "transfer-encoding") || iequals(n, "upgrade");
}

// request_head helpers live here to keep request.hpp free of code.
namespace {
std::string_view strip_authority(std::string_view t) {
    // absolute-form: scheme "://" authority path-abempty
    auto scheme_end = t.find("://");
    if (scheme_end == std::string_view::npos || t.empty() || t[0] == '/') return t;
    auto path_start = t.find_first_of("/?", scheme_end + 3);
    if (path_start == std::string_view::npos) return "/";
    if (t[path_start] == '?') return t.substr(path_start); // no path: treat as "/" + query below
    return t.substr(path_start);
}
std::string_view without_fragment(std::string_view t) {
    auto h = t.find('#');
    return h == std::string_view::npos ? t : t.substr(0, h);
}
} // namespace

std::string_view request_head::path() const {
    std::string_view t = without_fragment(strip_authority(target));
    auto q = t.find('?');
    return q == std::string_view::npos ? t : t.substr(0, q);
}

std::string_view request_head::query() const {
    std::string_view t = without_fragment(strip_authority(target));
    auto q = t.find('?');
    return q == std::string_view::npos ? std::string_view{} : t.substr(q + 1);
}

std::size_t routed_path::prefix_segments() const {
    auto head = std::string_view(decoded).substr(0, rest_at);
    return static_cast<std::size_t>(std::count(head.begin(), head.end(), '/'));
}

bool request_head::is_websocket() const {
    if (!upgrade || method != "GET" || version != 11) return false;
    const std::string* u = find("upgrade");
    return u && boost::beast::iequals(*u, "websocket");
}

const std::string* request_head::find(std::string_view lower_name) const {
    for (auto& h : headers)
        if (boost::beast::iequals(h.name, lower_name)) return &h.value;
    return nullptr;
}

} // namespace trestle::net
