#pragma once
// A Beast request parser that keeps what the adapters need (the fields in
// order, as sent) and applies Trestle's request rules on top of Beast's:
// field count, no obs-fold, one Host, a Transfer-Encoding that is exactly
// `chunked`, and no field names that cannot become CGI variables safely.
#include "bridge/net/request.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/basic_parser.hpp>

#include <string>

namespace trestle::net {

// Errors of our own rules. `is_header_too_large` maps them to 431.
enum class parse_error {
    ok = 0,
    too_many_headers = 1,
    bad_header = 2,        // obs-fold, control characters, duplicate Host...
    missing_host = 3,
    bad_transfer_encoding = 4,
    bad_target = 5,
    unsupported_transfer_coding = 6,   // well-formed, not chunked: 501
    bad_version = 7,                   // not HTTP/DIGIT.DIGIT: 400
    version_not_supported = 8,         // a major version other than 1: 505
};
const boost::system::error_category& parse_category();
boost::system::error_code make_error(parse_error e);

class request_parser : public boost::beast::http::basic_parser<true> {
public:
    request_parser(std::size_t max_header_bytes, std::size_t max_header_count,
                   std::uint64_t max_body_bytes);

    request_head& head() { return head_; }
    // put() for the bytes of a head: while the request line has not been
    // parsed, check_request_line() judges (and may fix) its version first.
    std::size_t put_head(boost::asio::mutable_buffer buf, boost::system::error_code& ec);
    // Body bytes parsed so far and not yet taken.
    std::string& body_sink() { return body_; }

private:
    void on_request_impl(boost::beast::http::verb, boost::beast::string_view method,
                         boost::beast::string_view target, int version,
                         boost::system::error_code& ec) override;
    void on_response_impl(int, boost::beast::string_view, int, boost::system::error_code&) override {}
    void on_field_impl(boost::beast::http::field f, boost::beast::string_view name,
                       boost::beast::string_view value, boost::system::error_code& ec) override;
    void on_header_impl(boost::system::error_code& ec) override;
    void on_body_init_impl(const boost::optional<std::uint64_t>&,
                           boost::system::error_code& ec) override { ec = {}; }
    std::size_t on_body_impl(boost::beast::string_view body, boost::system::error_code& ec) override;
    void on_chunk_header_impl(std::uint64_t, boost::beast::string_view,
                              boost::system::error_code& ec) override { ec = {}; }
    std::size_t on_chunk_body_impl(std::uint64_t, boost::beast::string_view body,
                                   boost::system::error_code& ec) override;
    void on_finish_impl(boost::system::error_code& ec) override { ec = {}; }

    request_head head_;
    std::string body_;
    std::size_t max_header_count_;
    int host_count_ = 0;
    int content_type_count_ = 0;
    bool request_line_done_ = false;
    std::string transfer_encoding_;
    int te_lines_ = 0;
};

// Checks the HTTP-version of the request line at the start of `data` (the
// bytes of a request head whose request line is not yet parsed) as soon as that line is complete,
// instead of when the whole head is: Beast waits for eight bytes of version,
// so `GET / \r\n\r\n` sat until the head timeout. Not HTTP/DIGIT.DIGIT is
// bad_version (400); a major version other than 1 is version_not_supported
// (505); HTTP/1.2 to HTTP/1.9 are rewritten in place to HTTP/1.1, the highest
// minor version Trestle implements (RFC 9110 2.5, RFC 9112 2.3). A line not
// yet complete, or one Beast should judge, returns no error.
boost::system::error_code check_request_line(char* data, std::size_t size);

// Checks the raw bytes of a complete request head for framing Beast accepts
// but Trestle refuses (obs-fold, bare LF, NUL).
boost::system::error_code check_raw_head(std::string_view raw);

// The status a parse error should be answered with (400, 413, 431...).
unsigned status_for_parse_error(const boost::system::error_code& ec);

} // namespace trestle::net
