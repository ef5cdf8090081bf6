#include "adapters/static/accept_encoding.hpp"

#include <boost/beast/core/string.hpp>

#include <optional>

namespace trestle::statics {

namespace {

bool is_ows(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
    return s;
}


// qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), in
// thousandths.
std::optional<int> qvalue(std::string_view s) {
    if (s.empty() || (s[0] != '0' && s[0] != '1')) return std::nullopt;
    int whole = s[0] - '0';
    int frac = 0;
    if (s.size() > 1) {
        if (s[1] != '.' || s.size() > 5) return std::nullopt;
        int scale = 100;
        for (char c : s.substr(2)) {
            if (c < '0' || c > '9') return std::nullopt;
            frac += (c - '0') * scale;
            scale /= 10;
        }
    }
    if (whole == 1 && frac != 0) return std::nullopt;
    return whole * 1000 + frac;
}

} // namespace

accepted_codings parse_accept_encoding(std::string_view field) {
    // -1: not named
    int q_br = -1, q_gzip = -1, q_star = -1;
    while (!field.empty()) {
        auto comma = field.find(',');
        std::string_view element = field.substr(0, comma);
        field = comma == std::string_view::npos ? std::string_view{} : field.substr(comma + 1);
        auto semi = element.find(';');
        std::string_view name = trim(element.substr(0, semi));
        if (name.empty()) continue;
        int q = 1000;
        bool bad = false;
        while (semi != std::string_view::npos) {
            std::string_view rest = element.substr(semi + 1);
            semi = rest.find(';');
            std::string_view param = trim(rest.substr(0, semi));
            element = rest;
            auto eq = param.find('=');
            if (eq == std::string_view::npos) continue;
            if (!boost::beast::iequals(trim(param.substr(0, eq)), "q")) continue;
            auto v = qvalue(trim(param.substr(eq + 1)));
            if (!v) bad = true;
            else q = *v;
        }
        if (bad) q = 0;
        if (boost::beast::iequals(name, "br")) q_br = q;
        else if (boost::beast::iequals(name, "gzip") || boost::beast::iequals(name, "x-gzip")) q_gzip = q;
        else if (name == "*") q_star = q;
    }
    if (q_br < 0) q_br = q_star;
    if (q_gzip < 0) q_gzip = q_star;

    accepted_codings a;
    bool br_ok = q_br > 0, gzip_ok = q_gzip > 0;
    if (br_ok && gzip_ok) {
        a.order = q_gzip > q_br ? std::array{coding::gzip, coding::br} : std::array{coding::br, coding::gzip};
        a.count = 2;
    } else if (br_ok) {
        a.order[0] = coding::br;
        a.count = 1;
    } else if (gzip_ok) {
        a.order[0] = coding::gzip;
        a.count = 1;
    }
    return a;
}

} // namespace trestle::statics
