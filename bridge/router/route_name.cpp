#include "bridge/router/route_name.hpp"

#include <algorithm>

namespace trestle::router {

bool glob_match(std::string_view p, std::string_view s) {
    while (!p.empty()) {
        if (p.starts_with("**")) {
            p.remove_prefix(2);
            for (std::size_t i = 0; i <= s.size(); ++i)
                if (glob_match(p, s.substr(i))) return true;
            return false;
        }
        if (p.front() == '*') {
            p.remove_prefix(1);
            for (std::size_t i = 0; i <= s.size(); ++i) {
                if (glob_match(p, s.substr(i))) return true;
                if (i < s.size() && s[i] == '/') break;
            }
            return false;
        }
        if (s.empty() || s.front() != p.front()) return false;
        p.remove_prefix(1);
        s.remove_prefix(1);
    }
    return s.empty();
}

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool names_one_thing(std::string_view seg) {
    if (seg.empty()) return false;
    if (std::all_of(seg.begin(), seg.end(), is_digit)) return true;
    if (seg.size() < 16) return false;
    bool hexish = std::all_of(seg.begin(), seg.end(), [](char c) {
        return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == '-';
    });
    return hexish || std::any_of(seg.begin(), seg.end(), is_digit);
}

} // namespace

std::string route_name(std::string_view method, std::string_view prefix, std::string_view rest,
                       const std::vector<std::string>& patterns) {
    std::string route;
    append_route_name(route, method, prefix, rest, patterns);
    return route;
}

void append_route_name(std::string& route, std::string_view method, std::string_view prefix, std::string_view rest,
                       const std::vector<std::string>& patterns) {
    route += method;
    route += ' ';
    route += prefix;
    if (rest.empty()) rest = "/";
    for (auto& p : patterns)
        if (glob_match(p, rest)) {
            route += p;
            return;
        }
    std::size_t pos = 0;
    while (pos < rest.size()) {
        std::size_t slash = rest.find('/', pos + 1);
        std::string_view seg = rest.substr(pos + 1, slash == std::string_view::npos ? std::string_view::npos : slash - pos - 1);
        route += '/';
        route += names_one_thing(seg) ? std::string_view(":id") : seg;
        if (slash == std::string_view::npos) break;
        pos = slash;
    }
}

} // namespace trestle::router
