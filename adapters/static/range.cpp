#include "adapters/static/range.hpp"

#include <boost/beast/core/string.hpp>

#include <algorithm>
#include <limits>
#include <optional>
#include <vector>

namespace trestle::statics {

namespace {

constexpr std::uint64_t max_u64 = std::numeric_limits<std::uint64_t>::max();

bool is_ows(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
    return s;
}

// Decimal digits; values past 2^64-1 saturate (they only ever mean "to
// the end" or "past the end").
std::optional<std::uint64_t> number(std::string_view s) {
    if (s.empty()) return std::nullopt;
    std::uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        unsigned d = static_cast<unsigned>(c - '0');
        v = v > (max_u64 - d) / 10 ? max_u64 : v * 10 + d;
    }
    return v;
}


struct piece {
    std::uint64_t first, last;
};

} // namespace

range_request parse_range(std::string_view field, std::uint64_t size) {
    range_request whole;
    field = trim(field);
    auto eq = field.find('=');
    if (eq == std::string_view::npos || !boost::beast::iequals(field.substr(0, eq), "bytes")) return whole;
    std::string_view set = field.substr(eq + 1);

    std::vector<piece> pieces;
    bool any = false;
    while (!set.empty()) {
        auto comma = set.find(',');
        std::string_view spec = trim(set.substr(0, comma));
        set = comma == std::string_view::npos ? std::string_view{} : set.substr(comma + 1);
        if (spec.empty()) continue;   // list syntax allows empty elements
        any = true;
        auto dash = spec.find('-');
        if (dash == std::string_view::npos) return whole;
        std::string_view a = spec.substr(0, dash), b = spec.substr(dash + 1);
        if (a.empty()) {   // suffix: the last n bytes
            auto n = number(b);
            if (!n) return whole;
            if (*n == 0 || size == 0) continue;
            pieces.push_back({size - std::min(*n, size), size - 1});
            continue;
        }
        auto first = number(a);
        if (!first) return whole;
        std::uint64_t last = max_u64;
        if (!b.empty()) {
            auto l = number(b);
            if (!l || *l < *first) return whole;
            last = *l;
        }
        if (*first >= size) continue;
        pieces.push_back({*first, std::min(last, size - 1)});
    }
    if (!any) return whole;
    if (pieces.empty()) return {range_request::kind::unsatisfiable, 0, 0};

    std::sort(pieces.begin(), pieces.end(), [](const piece& x, const piece& y) { return x.first < y.first; });
    piece merged = pieces.front();
    for (std::size_t i = 1; i < pieces.size(); ++i) {
        if (pieces[i].first > merged.last + 1) return whole;   // a gap: more than one piece
        merged.last = std::max(merged.last, pieces[i].last);
    }
    return {range_request::kind::single, merged.first, merged.last};
}

} // namespace trestle::statics
