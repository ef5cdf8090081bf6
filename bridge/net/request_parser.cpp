#include "bridge/net/request_parser.hpp"
#include "bridge/net/http_util.hpp"

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/field.hpp>

#include <cctype>

namespace trestle::net {

namespace http = boost::beast::http;
using boost::system::error_code;

namespace {

class parse_category_impl : public boost::system::error_category {
public:
    const char* name() const noexcept override { return "trestle.http"; }
    std::string message(int ev) const override {
        switch (static_cast<parse_error>(ev)) {
        case parse_error::ok: return "ok";
        case parse_error::too_many_headers: return "too many header fields";
        case parse_error::bad_header: return "malformed header field";
        case parse_error::missing_host: return "HTTP/1.1 request without exactly one Host";
        case parse_error::bad_target: return "malformed request-target";
        case parse_error::unsupported_transfer_coding: return "transfer coding not implemented";
        case parse_error::bad_version: return "malformed HTTP-version";
        case parse_error::version_not_supported: return "HTTP major version not supported";
        case parse_error::bad_transfer_encoding: return "unsupported Transfer-Encoding";
        }
        return "unknown";
    }
};

// RFC 9112 3.2: origin-form ("/..."), absolute-form ("scheme://..."),
// authority-form only for CONNECT (passed to the app, which decides), and
// asterisk-form only for OPTIONS.
bool valid_target(std::string_view method, std::string_view t) {
    if (t.empty()) return false;
    if (method == "CONNECT") return t[0] != '/' && t.find('/') == std::string_view::npos && t != "*";
    if (t[0] == '/') return true;
    if (t == "*") return method == "OPTIONS";
    auto colon = t.find("://");
    if (colon == std::string_view::npos || colon == 0) return false;
    if (!std::isalpha(static_cast<unsigned char>(t[0]))) return false;
    for (char c : t.substr(0, colon))
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' && c != '.') return false;
    return true;
}

bool has_control(std::string_view v) {
    for (unsigned char c : v)
        if ((c < 0x20 && c != '\t') || c == 0x7f) return true;
    return false;
}

} // namespace

const boost::system::error_category& parse_category() {
    static parse_category_impl cat;
    return cat;
}

error_code make_error(parse_error e) { return {static_cast<int>(e), parse_category()}; }

request_parser::request_parser(std::size_t max_header_bytes, std::size_t max_header_count,
                               std::uint64_t max_body_bytes)
    : max_header_count_(max_header_count) {
    header_limit(static_cast<std::uint32_t>(max_header_bytes));
    body_limit(max_body_bytes);
}

void request_parser::on_request_impl(http::verb, boost::beast::string_view method, boost::beast::string_view target,
                                     int version, error_code& ec) {
    // Beast itself refuses any version other than 1.0 and 1.1 (400).
    if (!valid_target(method, target)) {
        ec = make_error(parse_error::bad_target);
        return;
    }
    request_line_done_ = true;
    head_.method.assign(method);
    head_.target.assign(target);
    head_.version = static_cast<unsigned>(version);
    head_.head_method = method == "HEAD";
    head_.headers.reserve(16);
}

std::size_t request_parser::put_head(boost::asio::mutable_buffer buf, error_code& ec) {
    // Beast parses the request line as soon as it is complete and may
    // consume it before the rest of the head arrives: only until then do the
    // buffer's first bytes hold it.
    if (!request_line_done_) {
        ec = check_request_line(static_cast<char*>(buf.data()), buf.size());
        if (ec) return 0;
    }
    return put(buf, ec);
}

void request_parser::on_field_impl(http::field f, boost::beast::string_view name, boost::beast::string_view value,
                                   error_code& ec) {
    if (head_.headers.size() >= max_header_count_) {
        ec = make_error(parse_error::too_many_headers);
        return;
    }
    // Beast has already unfolded obs-fold; the raw-bytes check in
    // check_raw_head() rejects it. Here: no control characters (BEL, DEL, NUL).
    if (has_control(value)) {
        ec = make_error(parse_error::bad_header);
        return;
    }
    if (f == http::field::host && ++host_count_ > 1) {
        ec = make_error(parse_error::missing_host);
        return;
    }
    // Content-Type is a singleton (RFC 9110 8.3); two of them cannot be
    // joined into anything an app could parse.
    if (f == http::field::content_type && ++content_type_count_ > 1) {
        ec = make_error(parse_error::bad_header);
        return;
    }
    if (f == http::field::transfer_encoding) {
        // Joined as one list; an empty line stays an (invalid) empty element.
        if (te_lines_++ > 0) transfer_encoding_ += ',';
        transfer_encoding_.append(value);
    }
    if (f == http::field::expect && boost::beast::iequals(value, "100-continue"))
        head_.expect_continue = true;
    head_.headers.push_back({std::string(name), std::string(value), static_cast<int>(f)});
    ec = {};
}

void request_parser::on_header_impl(error_code& ec) {
    ec = {};
    if (head_.version == 11 && host_count_ != 1) {
        ec = make_error(parse_error::missing_host);
        return;
    }
    if (te_lines_ > 0 && head_.version == 10) {
        // RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 request is faulty
        // framing; another parser could read the body by length instead.
        ec = make_error(parse_error::bad_transfer_encoding);
        return;
    }
    if (te_lines_ > 0) {
        // The whole value is checked (Beast reads only up to the first
        // character it does not expect, so `chunked x` or `chunked;foo`
        // looked like chunked): only exactly one final `chunked` frames a
        // body here. Anything another parser could read another way is a
        // 400; a well-formed coding Trestle does not implement is a 501.
        switch (check_transfer_encoding(transfer_encoding_)) {
        case transfer_coding::chunked: break;
        case transfer_coding::malformed: ec = make_error(parse_error::bad_transfer_encoding); return;
        case transfer_coding::unsupported: ec = make_error(parse_error::unsupported_transfer_coding); return;
        }
    }
    if (auto cl = content_length()) head_.content_length = *cl;
    head_.chunked = chunked();
    head_.keep_alive = keep_alive();
    head_.upgrade = upgrade();
}

std::size_t request_parser::on_body_impl(boost::beast::string_view body, error_code& ec) {
    body_.append(body);
    ec = {};
    return body.size();
}

std::size_t request_parser::on_chunk_body_impl(std::uint64_t, boost::beast::string_view body, error_code& ec) {
    body_.append(body);
    ec = {};
    return body.size();
}

error_code check_request_line(char* data, std::size_t size) {
    std::string_view all(data, size);
    auto nl = all.find('\n');
    if (nl == std::string_view::npos) return {};
    std::string_view line = all.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    auto sp = line.rfind(' ');
    // No space at all: HTTP/0.9 or garbage, which Beast refuses at once.
    if (sp == std::string_view::npos) return {};
    std::string_view v = line.substr(sp + 1);
    auto digit = [](char c) { return c >= '0' && c <= '9'; };
    if (v.size() != 8 || v.substr(0, 5) != "HTTP/" || !digit(v[5]) || v[6] != '.' || !digit(v[7]))
        return make_error(parse_error::bad_version);
    if (v[5] != '1') return make_error(parse_error::version_not_supported);
    if (v[7] > '1') data[sp + 1 + 7] = '1';   // HTTP/1.x, x > 1: served as 1.1
    return {};
}

error_code check_raw_head(std::string_view raw) {
    // Beast accepts a few things RFC 9112 lets a server refuse and which
    // other parsers read differently: obs-fold, bare LF line endings and
    // whitespace before the colon. Refuse all three.
    for (std::size_t i = 0; i < raw.size(); ++i) {
        char c = raw[i];
        if (c == '\n') {
            if (i == 0 || raw[i - 1] != '\r') return make_error(parse_error::bad_header);
            if (i + 1 < raw.size() && (raw[i + 1] == ' ' || raw[i + 1] == '\t'))
                return make_error(parse_error::bad_header);
        } else if (c == '\0') {
            return make_error(parse_error::bad_header);
        }
    }
    return {};
}

unsigned status_for_parse_error(const error_code& ec) {
    if (ec == http::error::header_limit) return 431;
    if (ec == http::error::body_limit) return 413;
    if (ec.category() == parse_category()) {
        switch (static_cast<parse_error>(ec.value())) {
        case parse_error::too_many_headers: return 431;
        case parse_error::unsupported_transfer_coding: return 501;
        case parse_error::version_not_supported: return 505;
        default: return 400;
        }
    }
    return 400;
}

} // namespace trestle::net
