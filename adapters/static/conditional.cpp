#include "adapters/static/conditional.hpp"

#include "adapters/static/http_date.hpp"

#include <charconv>

namespace trestle::statics {

namespace {

void append_hex(std::string& out, std::uint64_t v) {
    char buf[16];
    auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v, 16);
    out.append(buf, p);
}

bool is_ows(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
    return s;
}

struct entity_tag {
    bool weak = false;
    std::string_view opaque;   // with its quotes
};

// Reads one entity-tag at the start of `s` and advances past it.
std::optional<entity_tag> read_tag(std::string_view& s) {
    entity_tag t;
    if (s.starts_with("W/")) {
        t.weak = true;
        s.remove_prefix(2);
    }
    if (s.empty() || s.front() != '"') return std::nullopt;
    auto close = s.find('"', 1);
    if (close == std::string_view::npos) return std::nullopt;
    t.opaque = s.substr(0, close + 1);
    s.remove_prefix(close + 1);
    return t;
}

std::optional<entity_tag> whole_tag(std::string_view s) {
    s = trim(s);
    auto t = read_tag(s);
    if (!t || !s.empty()) return std::nullopt;
    return t;
}

} // namespace

std::string make_etag(std::uint64_t inode, std::uint64_t size, std::int64_t mtime_sec, long mtime_nsec,
                      std::string_view variant) {
    std::string e = "\"";
    append_hex(e, static_cast<std::uint64_t>(mtime_sec));
    e += '.';
    append_hex(e, static_cast<std::uint64_t>(mtime_nsec));
    e += '-';
    append_hex(e, size);
    e += '-';
    append_hex(e, inode);
    if (!variant.empty()) {
        e += '-';
        e += variant;
    }
    e += '"';
    return e;
}

bool etag_list_matches(std::string_view list, std::string_view etag, tag_compare how) {
    list = trim(list);
    if (list == "*") return true;
    auto ours = whole_tag(etag);
    if (!ours) return false;
    for (;;) {
        while (!list.empty() && (is_ows(list.front()) || list.front() == ',')) list.remove_prefix(1);
        if (list.empty()) return false;
        auto t = read_tag(list);
        if (!t) return false;   // malformed from here on: no match
        bool same = t->opaque == ours->opaque;
        if (how == tag_compare::strong) same = same && !t->weak && !ours->weak;
        if (same) return true;
    }
}

precondition evaluate_preconditions(const conditional_fields& f, const validators& v) {
    if (f.if_match) {
        if (!etag_list_matches(*f.if_match, v.etag, tag_compare::strong)) return precondition::failed;
    } else if (f.if_unmodified_since) {
        auto d = parse_http_date(trim(*f.if_unmodified_since));
        if (d && v.last_modified > *d) return precondition::failed;
    }
    if (f.if_none_match) {
        if (etag_list_matches(*f.if_none_match, v.etag, tag_compare::weak)) return precondition::not_modified;
    } else if (f.if_modified_since) {
        auto d = parse_http_date(trim(*f.if_modified_since));
        if (d && v.last_modified <= *d) return precondition::not_modified;
    }
    return precondition::proceed;
}

bool if_range_holds(std::string_view if_range, const validators& v) {
    if_range = trim(if_range);
    if (if_range.starts_with("W/") || if_range.starts_with("\"")) {
        auto t = whole_tag(if_range);
        return t && etag_list_matches(if_range, v.etag, tag_compare::strong);
    }
    auto d = parse_http_date(if_range);
    return d && *d == v.last_modified;
}

} // namespace trestle::statics
