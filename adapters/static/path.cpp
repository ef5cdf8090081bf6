#include "adapters/static/path.hpp"

namespace trestle::statics {

namespace {

// Checks one decoded segment; 0 or the refusal status.
unsigned check_segment(std::string_view seg) {
    for (char c : seg)
        if (c == '\0' || c == '\\') return 400;
    if (!valid_utf8(seg)) return 400;
    if (seg == "..") return 400;
    return 0;
}

} // namespace

decoded_path file_path(std::string_view rest) {
    decoded_path r;
    if (!rest.empty() && rest[0] != '/') {
        r.status = 400;
        return r;
    }
    std::size_t pos = 0;
    while (pos < rest.size()) {
        std::size_t start = pos + 1;   // past the '/'
        std::size_t end = rest.find('/', start);
        if (end == std::string_view::npos) end = rest.size();
        std::string_view seg = rest.substr(start, end - start);
        if (unsigned st = check_segment(seg)) {
            r.status = st;
            r.rel.clear();
            return r;
        }
        bool last = end == rest.size();
        if (seg.empty() || seg == ".") {
            if (last) r.trailing_slash = true;
        } else {
            if (!r.rel.empty()) r.rel += '/';
            r.rel += seg;
            if (last) r.trailing_slash = false;
        }
        pos = end;
    }
    return r;
}

bool valid_utf8(std::string_view s) {
    std::size_t i = 0, n = s.size();
    while (i < n) {
        auto b = static_cast<unsigned char>(s[i]);
        if (b < 0x80) {
            ++i;
            continue;
        }
        std::size_t len;
        unsigned cp;
        if (b >= 0xC2 && b <= 0xDF) { len = 2; cp = b & 0x1F; }
        else if (b >= 0xE0 && b <= 0xEF) { len = 3; cp = b & 0x0F; }
        else if (b >= 0xF0 && b <= 0xF4) { len = 4; cp = b & 0x07; }
        else return false;   // continuation byte, C0/C1 (overlong), F5..FF
        if (i + len > n) return false;
        for (std::size_t k = 1; k < len; ++k) {
            auto c = static_cast<unsigned char>(s[i + k]);
            if ((c & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (c & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) return false;   // overlong
        if (cp >= 0xD800 && cp <= 0xDFFF) return false;                               // surrogate
        if (cp > 0x10FFFF) return false;
        i += len;
    }
    return true;
}

} // namespace trestle::statics
