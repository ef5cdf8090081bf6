#include "bridge/observability/access_format.hpp"

#include "bridge/net/http_date.hpp"
#include "bridge/net/http_util.hpp"

#include <boost/beast/core/string.hpp>

#include <charconv>
#include <ctime>

namespace trestle {
namespace {

using atom = access_format::atom;

constexpr char hex_digits[] = "0123456789abcdef";

const char* const known_atoms = "h l u t r m U q H s B b f a T M D L p {header}i {header}o {variable}e";
const char* const known_variables = "remote_addr, remote_port, server_name, server_port, request_method, query_string, "
                                    "server_protocol, raw_uri, request_uri, wsgi.url_scheme, content_type, "
                                    "content_length, http_*";

// ---- compiling -----------------------------------------------------------

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = net::ascii_lower(c);
    return out;
}


bool letter_atom(char c, atom& a) {
    switch (c) {
    case 'h': a = atom::remote_addr; return true;
    case 'l': a = atom::dash; return true;
    case 'u': a = atom::user; return true;
    case 't': a = atom::time; return true;
    case 'r': a = atom::request_line; return true;
    case 'm': a = atom::method; return true;
    case 'U': a = atom::path; return true;
    case 'q': a = atom::query; return true;
    case 'H': a = atom::protocol; return true;
    case 's': a = atom::status; return true;
    case 'B': a = atom::bytes; return true;
    case 'b': a = atom::bytes_clf; return true;
    case 'f': a = atom::referer; return true;
    case 'a': a = atom::user_agent; return true;
    case 'T': a = atom::seconds; return true;
    case 'M': a = atom::millis; return true;
    case 'D': a = atom::micros; return true;
    case 'L': a = atom::decimal_seconds; return true;
    case 'p': a = atom::pid; return true;
    default: return false;
    }
}

// gunicorn's {NAME}e reads the WSGI environ, which the access log (C++, on
// the io thread) never sees: the names that come from the request itself
// are mapped here, and the others refused rather than logged as '-'.
bool environ_atom(const std::string& name, access_format::piece& p) {
    static const std::pair<std::string_view, atom> direct[] = {
        {"remote_addr", atom::remote_addr},   {"remote_port", atom::remote_port},
        {"server_name", atom::server_name},   {"server_port", atom::server_port},
        {"request_method", atom::method},     {"query_string", atom::query},
        {"server_protocol", atom::protocol},  {"raw_uri", atom::target},
        {"request_uri", atom::target},        {"wsgi.url_scheme", atom::scheme},
    };
    for (auto& [n, a] : direct)
        if (name == n) {
            p.what = a;
            return true;
        }
    if (name == "content_type" || name == "content_length") {
        p.what = atom::request_header;
        p.text = name == "content_type" ? "content-type" : "content-length";
        return true;
    }
    if (name.starts_with("http_") && name.size() > 5) {
        p.what = atom::request_header;
        p.text = name.substr(5);
        for (char& c : p.text) c = c == '_' ? '-' : c;
        return net::is_token(p.text);
    }
    return false;
}

// The atom a %(NAME)s names; false with `why` for one the log cannot write.
bool resolve(std::string_view name, access_format::piece& p, std::string& why) {
    if (name.size() == 1 && letter_atom(name[0], p.what)) return true;
    if (name.size() >= 3 && name.front() == '{' && name[name.size() - 2] == '}') {
        std::string inner = lower(name.substr(1, name.size() - 3));
        switch (name.back()) {
        case 'i':
        case 'o':
            if (!net::is_token(inner)) {
                why = "%(" + std::string(name) + ")s: '" + inner + "' is not a header name";
                return false;
            }
            p.what = name.back() == 'i' ? atom::request_header : atom::response_header;
            p.text = std::move(inner);
            return true;
        case 'e':
            if (environ_atom(inner, p)) return true;
            why = "%(" + std::string(name) + ")s: not a value the access log knows (it sees the request, not the "
                  "app's environ); known: " + known_variables;
            return false;
        default: break;
        }
    }
    why = "unknown atom %(" + std::string(name) + ")s (known: " + known_atoms + ")";
    return false;
}

bool is_number(atom a) {
    switch (a) {
    case atom::status: case atom::bytes: case atom::seconds: case atom::millis: case atom::micros:
        return true;
    default:
        return false;
    }
}

// ---- rendering -----------------------------------------------------------

void append_uint(std::string& out, std::uint64_t v) {
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, end);
}

void append_fixed(std::string& out, double v, int precision) {
    char buf[48];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed, precision);
    out.append(buf, end);
}

void append_or_dash(std::string& out, const std::string* v) {
    if (v) append_log_escaped(out, *v);
    else out += '-';
}

void two(char* p, int v) {
    p[0] = static_cast<char>('0' + v / 10);
    p[1] = static_cast<char>('0' + v % 10);
}

// The date strings of the current second, per thread: made once a second,
// not once a line.
struct stamps {
    std::time_t second = -1;
    std::string clf;     // [10/Oct/2000:13:55:36 +0000]
    char iso[19];        // 2000-10-10T13:55:36

    void update(std::time_t s) {
        if (s == second) return;
        second = s;
        clf = net::format_log_date(s);
        std::tm tm{};
        gmtime_r(&s, &tm);
        int year = tm.tm_year + 1900;
        two(iso, year / 100);
        two(iso + 2, year % 100);
        iso[4] = '-';
        two(iso + 5, tm.tm_mon + 1);
        iso[7] = '-';
        two(iso + 8, tm.tm_mday);
        iso[10] = 'T';
        two(iso + 11, tm.tm_hour);
        iso[13] = ':';
        two(iso + 14, tm.tm_min);
        iso[16] = ':';
        two(iso + 17, tm.tm_sec);
    }
};

stamps& stamps_for(std::chrono::system_clock::time_point now) {
    thread_local stamps s;
    s.update(std::chrono::system_clock::to_time_t(std::chrono::floor<std::chrono::seconds>(now)));
    return s;
}

int base64_value(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

// The user name of "Authorization: Basic BASE64(user:password)", decoded
// straight into `out`; false (with `out` as it was) when there is none.
bool append_basic_user(std::string& out, const std::string* auth) {
    if (!auth || auth->size() < 6 || !boost::beast::iequals(std::string_view(*auth).substr(0, 6), "basic ")) return false;
    std::string_view b64 = std::string_view(*auth).substr(6);
    while (!b64.empty() && (b64.front() == ' ' || b64.front() == '\t')) b64.remove_prefix(1);
    while (!b64.empty() && (b64.back() == ' ' || b64.back() == '\t')) b64.remove_suffix(1);
    while (!b64.empty() && b64.back() == '=') b64.remove_suffix(1);
    std::size_t mark = out.size();
    std::uint32_t acc = 0;
    int bits = 0;
    bool done = false;   // the ':' has been reached: the rest is the password, only checked
    char one[1];
    for (char c : b64) {
        int v = base64_value(c);
        if (v < 0) {
            out.resize(mark);
            return false;
        }
        acc = (acc << 6) | static_cast<std::uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            char byte = static_cast<char>((acc >> bits) & 0xff);
            if (byte == ':') done = true;
            if (!done) {
                one[0] = byte;
                append_log_escaped(out, std::string_view(one, 1));
            }
        }
    }
    if (bits >= 6 || out.size() == mark) {   // a dangling 6 bits: not base64; or an empty user name
        out.resize(mark);
        return false;
    }
    return true;
}

// The request's X-Request-ID, else the response's: a proxy in front sets
// it on the request, a middleware that makes one up on the response.
std::optional<std::string_view> request_id(const access_record& r) {
    if (const std::string* v = r.head->find("x-request-id")) return *v;
    return find_field(r.response_head, "x-request-id");
}

void json_string_or_null(std::string& out, const std::string* v) {
    if (!v) {
        out += "null";
        return;
    }
    out += '"';
    append_json_escaped(out, *v);
    out += '"';
}

} // namespace

void append_log_escaped(std::string& out, std::string_view v) {
    std::size_t run = 0;   // safe bytes not yet appended, ending at i
    for (std::size_t i = 0; i < v.size(); ++i) {
        auto c = static_cast<unsigned char>(v[i]);
        if (c != '"' && c != '\\' && c >= 0x20 && c < 0x7f) {
            ++run;
            continue;
        }
        out.append(v.data() + i - run, run);
        run = 0;
        char esc[4] = {'\\', 'x', hex_digits[c >> 4], hex_digits[c & 0xf]};
        out.append(esc, 4);
    }
    out.append(v.data() + v.size() - run, run);
}

namespace {
// The length of the well-formed UTF-8 sequence at v[i] (RFC 3629 table:
// no overlong forms, no surrogates, nothing past U+10FFFF), or 0.
std::size_t utf8_length(std::string_view v, std::size_t i) {
    auto at = [&](std::size_t k) { return k < v.size() ? static_cast<unsigned char>(v[k]) : 0u; };
    auto cont = [&](std::size_t k, unsigned lo = 0x80, unsigned hi = 0xbf) { return at(k) >= lo && at(k) <= hi; };
    unsigned c = at(i);
    if (c >= 0xc2 && c <= 0xdf) return cont(i + 1) ? 2 : 0;
    if (c == 0xe0) return cont(i + 1, 0xa0) && cont(i + 2) ? 3 : 0;
    if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef) return cont(i + 1) && cont(i + 2) ? 3 : 0;
    if (c == 0xed) return cont(i + 1, 0x80, 0x9f) && cont(i + 2) ? 3 : 0;
    if (c == 0xf0) return cont(i + 1, 0x90) && cont(i + 2) && cont(i + 3) ? 4 : 0;
    if (c >= 0xf1 && c <= 0xf3) return cont(i + 1) && cont(i + 2) && cont(i + 3) ? 4 : 0;
    if (c == 0xf4) return cont(i + 1, 0x80, 0x8f) && cont(i + 2) && cont(i + 3) ? 4 : 0;
    return 0;
}
} // namespace

void append_json_escaped(std::string& out, std::string_view v) {
    std::size_t run = 0;
    std::size_t i = 0;
    auto flush = [&] {
        out.append(v.data() + i - run, run);
        run = 0;
    };
    while (i < v.size()) {
        auto c = static_cast<unsigned char>(v[i]);
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            ++run, ++i;
            continue;
        }
        if (c >= 0x80) {
            if (std::size_t n = utf8_length(v, i)) {
                run += n, i += n;
                continue;
            }
        }
        flush();
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        default: {
            char esc[6] = {'\\', 'u', '0', '0', hex_digits[c >> 4], hex_digits[c & 0xf]};
            out.append(esc, 6);
        }
        }
        ++i;
    }
    flush();
}

std::optional<std::string_view> find_field(std::string_view lines, std::string_view lower_name) {
    while (!lines.empty()) {
        std::size_t eol = lines.find("\r\n");
        std::string_view line = lines.substr(0, eol);
        lines = eol == std::string_view::npos ? std::string_view{} : lines.substr(eol + 2);
        std::size_t colon = line.find(':');
        if (colon == std::string_view::npos || !boost::beast::iequals(line.substr(0, colon), lower_name)) continue;
        std::string_view value = line.substr(colon + 1);
        while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
        while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
        return value;
    }
    return std::nullopt;
}

std::optional<access_format> access_format::compile(std::string_view spec, std::string& why) {
    access_format f;
    if (spec == "json") {
        f.json_ = true;
        f.needs_response_head_ = true;   // request_id may come from the response
        return f;
    }
    if (spec == "combined") spec = combined_format;
    else if (spec == "common") spec = common_format;
    if (spec.empty()) {
        why = "empty: expected combined, common, json or a gunicorn format string such as '%(h)s \"%(r)s\" %(s)s'";
        return std::nullopt;
    }
    for (char c : spec)
        if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) {
            why = "a control character in the format (the log is one line per request)";
            return std::nullopt;
        }
    std::string literal;
    for (std::size_t i = 0; i < spec.size();) {
        if (spec[i] != '%') {
            literal += spec[i++];
            continue;
        }
        if (spec.substr(i, 2) == "%%") {
            literal += '%';
            i += 2;
            continue;
        }
        if (spec.substr(i, 2) != "%(") {
            why = "'%' must begin %(NAME)s, or be written %% (at offset " + std::to_string(i) + ")";
            return std::nullopt;
        }
        // Python's % finds the name's end by counting parentheses.
        std::size_t j = i + 2;
        for (int depth = 1; j < spec.size(); ++j) {
            if (spec[j] == '(') ++depth;
            else if (spec[j] == ')' && --depth == 0) break;
        }
        if (j >= spec.size()) {
            why = "'%(' without its ')' (at offset " + std::to_string(i) + ")";
            return std::nullopt;
        }
        std::string_view name = spec.substr(i + 2, j - i - 2);
        char conv = j + 1 < spec.size() ? spec[j + 1] : '\0';
        if (conv != 's' && conv != 'd') {
            why = "%(" + std::string(name) + ") must be followed by s: only %(NAME)s is supported (no width, flags "
                  "or other conversions)";
            return std::nullopt;
        }
        piece p{atom::literal, {}};
        if (!resolve(name, p, why)) return std::nullopt;
        if (conv == 'd' && !is_number(p.what)) {
            why = "%(" + std::string(name) + ")d: not a number; write %(" + std::string(name) + ")s";
            return std::nullopt;
        }
        if (!literal.empty()) f.pieces_.push_back({atom::literal, std::move(literal)});
        literal.clear();
        if (p.what == atom::response_header) f.needs_response_head_ = true;
        f.pieces_.push_back(std::move(p));
        i = j + 2;
    }
    if (!literal.empty()) f.pieces_.push_back({atom::literal, std::move(literal)});
    // Most likely a misspelt name ("Json", "combine"), which would
    // otherwise be written out as the whole line for every request.
    if (f.pieces_.size() == 1 && f.pieces_[0].what == atom::literal) {
        why = "'" + std::string(spec) + "' is neither a format name (combined, common, json) nor a format string "
              "(it has no %(NAME)s)";
        return std::nullopt;
    }
    return f;
}

void access_format::render(const access_record& r, std::string& out) const {
    if (json_) {
        render_json(r, out);
    } else {
        render_pieces(r, out);
        out += '\n';
    }
}

void access_format::render_pieces(const access_record& r, std::string& out) const {
    const net::request_head& h = *r.head;
    const net::endpoint_info& ep = *r.endpoint;
    auto ns = static_cast<std::uint64_t>(r.duration.count() < 0 ? 0 : r.duration.count());
    for (const piece& p : pieces_) {
        switch (p.what) {
        case atom::literal: out += p.text; break;
        case atom::remote_addr:
            if (ep.remote_addr.empty()) out += '-';
            else append_log_escaped(out, ep.remote_addr);
            break;
        case atom::dash: out += '-'; break;
        case atom::user:
            if (!append_basic_user(out, h.find("authorization"))) out += '-';
            break;
        case atom::time: out += stamps_for(r.now).clf; break;
        case atom::request_line:
            append_log_escaped(out, h.method);
            out += ' ';
            append_log_escaped(out, h.target);
            out += h.version == 10 ? " HTTP/1.0" : h.version == 20 ? " HTTP/2.0" : " HTTP/1.1";
            break;
        case atom::method: append_log_escaped(out, h.method); break;
        case atom::path: append_log_escaped(out, h.path()); break;
        case atom::query: append_log_escaped(out, h.query()); break;
        case atom::protocol: out += h.version == 10 ? "HTTP/1.0" : h.version == 20 ? "HTTP/2.0" : "HTTP/1.1"; break;
        case atom::status:
            if (r.status) append_uint(out, r.status);
            else out += '-';
            break;
        case atom::bytes: append_uint(out, r.bytes); break;
        case atom::bytes_clf:
            if (r.bytes) append_uint(out, r.bytes);
            else out += '-';
            break;
        case atom::referer: append_or_dash(out, h.find("referer")); break;
        case atom::user_agent: append_or_dash(out, h.find("user-agent")); break;
        case atom::seconds: append_uint(out, ns / 1'000'000'000); break;
        case atom::millis: append_uint(out, ns / 1'000'000); break;
        case atom::micros: append_uint(out, ns / 1'000); break;
        case atom::decimal_seconds: append_fixed(out, std::chrono::duration<double>(r.duration).count(), 6); break;
        case atom::pid:
            out += '<';
            append_uint(out, static_cast<std::uint64_t>(r.pid));
            out += '>';
            break;
        case atom::request_header: append_or_dash(out, h.find(p.text)); break;
        case atom::response_header:
            if (auto v = find_field(r.response_head, p.text)) append_log_escaped(out, *v);
            else out += '-';
            break;
        case atom::target: append_log_escaped(out, h.target); break;
        case atom::remote_port:
            if (ep.remote_port.empty()) out += '-';
            else append_log_escaped(out, ep.remote_port);
            break;
        case atom::server_name: append_log_escaped(out, ep.server_name); break;
        case atom::server_port: append_log_escaped(out, ep.server_port); break;
        case atom::scheme: append_log_escaped(out, ep.scheme); break;
        }
    }
}

void access_format::render_json(const access_record& r, std::string& out) const {
    const net::request_head& h = *r.head;
    const net::endpoint_info& ep = *r.endpoint;
    stamps& s = stamps_for(r.now);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(r.now.time_since_epoch()).count() % 1000;
    out += R"({"time":")";
    out.append(s.iso, sizeof s.iso);
    char frac[5] = {'.', static_cast<char>('0' + ms / 100), static_cast<char>('0' + ms / 10 % 10),
                    static_cast<char>('0' + ms % 10), '\0'};
    out.append(frac, 4);
    out += R"(+00:00","remote_addr":)";
    json_string_or_null(out, ep.remote_addr.empty() ? nullptr : &ep.remote_addr);
    out += R"(,"method":")";
    append_json_escaped(out, h.method);
    out += R"(","path":")";
    append_json_escaped(out, h.path());
    out += R"(","query":")";
    append_json_escaped(out, h.query());
    out += h.version == 10   ? R"(","protocol":"HTTP/1.0","status":)"
           : h.version == 20 ? R"(","protocol":"HTTP/2.0","status":)"
                             : R"(","protocol":"HTTP/1.1","status":)";
    if (r.status) append_uint(out, r.status);
    else out += "null";
    out += R"(,"bytes":)";
    append_uint(out, r.bytes);
    out += R"(,"duration_ms":)";
    append_fixed(out, std::chrono::duration<double, std::milli>(r.duration).count(), 3);
    out += R"(,"referer":)";
    json_string_or_null(out, h.find("referer"));
    out += R"(,"user_agent":)";
    json_string_or_null(out, h.find("user-agent"));
    out += R"(,"request_id":)";
    if (auto id = request_id(r)) {
        out += '"';
        append_json_escaped(out, *id);
        out += '"';
    } else {
        out += "null";
    }
    out += R"(,"pid":)";
    append_uint(out, static_cast<std::uint64_t>(r.pid));
    out += "}\n";
}

} // namespace trestle
