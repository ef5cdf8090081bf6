#include "bridge/net/request_path.hpp"

#include "bridge/net/http_util.hpp"

namespace trestle::net {

namespace {

// The next segment of a decoded path at `pos` (just past a '/').
std::string_view segment_at(std::string_view path, std::size_t pos) {
    std::size_t end = path.find('/', pos);
    return path.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
}

bool has_dot_dot(std::string_view path) {
    std::size_t pos = 0;
    while (pos <= path.size()) {
        std::string_view seg = segment_at(path, pos);
        if (seg == "..") return true;
        pos += seg.size() + 1;
    }
    return false;
}

// A separator in a raw path: '/' or %2F, and its length.
std::size_t separator_at(std::string_view raw, std::size_t i) {
    if (raw[i] == '/') return 1;
    if (raw[i] == '%' && i + 2 < raw.size() && raw[i + 1] == '2' && (raw[i + 2] == 'F' || raw[i + 2] == 'f')) return 3;
    return 0;
}

} // namespace

unsigned decode_path(std::string_view raw, std::string& out) {
    if (!percent_decode(raw, out)) return 400;   // an encoded NUL
    if (has_dot_dot(out)) return 400;
    return 0;
}

bool decode_prefix(std::string& p, std::string& why) {
    if (p.empty() || p[0] != '/') {
        why = "must start with '/'";
        return false;
    }
    for (unsigned char c : p)
        if (c < 0x20 || c == 0x7f || c == '?' || c == '#') {
            why = "must be a plain path (no control characters, '?' or '#')";
            return false;
        }
    std::string decoded;
    if (decode_path(p, decoded)) {
        why = "must be a plain path (no encoded NUL, no '..' segment)";
        return false;
    }
    std::string out;
    std::size_t pos = 1;
    while (pos <= decoded.size()) {
        std::string_view seg = segment_at(decoded, pos);
        if (!seg.empty() && seg != ".") {
            out += '/';
            out.append(seg);
        }
        pos += seg.size() + 1;
    }
    p = std::move(out);
    return true;
}

std::optional<std::size_t> match_prefix(std::string_view path, std::string_view prefix) {
    if (prefix.empty()) return 0;
    if (path.empty() || path[0] != '/') return std::nullopt;
    std::size_t pp = 1, at = 0;   // into prefix (past a '/'); into path (at a '/')
    while (pp <= prefix.size()) {
        std::string_view want = segment_at(prefix, pp);
        std::string_view got;
        do {   // the next segment of the path that is neither empty nor "."
            if (at >= path.size()) return std::nullopt;
            got = segment_at(path, at + 1);
            at += got.size() + 1;
        } while (got.empty() || got == ".");
        if (got != want) return std::nullopt;
        pp += want.size() + 1;
    }
    return at;
}

std::string raw_rest(std::string_view raw, std::size_t segments) {
    std::size_t seen = 0;
    for (std::size_t i = 0; i < raw.size();) {
        std::size_t n = separator_at(raw, i);
        if (n && seen++ == segments) return "/" + std::string(raw.substr(i + n));
        i += n ? n : 1;
    }
    return {};
}

std::string encode_path(std::string_view decoded) {
    static constexpr char hex[] = "0123456789ABCDEF";
    static constexpr std::string_view keep = "-._~!$&'()*+,;=:@/";
    std::string out;
    out.reserve(decoded.size());
    for (unsigned char c : decoded) {
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');   // not the locale's
        if (alnum || keep.find(static_cast<char>(c)) != std::string_view::npos) {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

unsigned decode_target_path(const request_head& h, std::string& out) {
    std::string_view raw = h.path();
    if (raw.empty() || raw[0] != '/') {   // "*" (OPTIONS *)
        out.assign(raw);
        return 0;
    }
    return decode_path(raw, out);
}

} // namespace trestle::net
