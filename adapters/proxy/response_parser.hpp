#pragma once
// Reads an upstream's response with Beast's parser and keeps what the proxy
// relays: the status line, the header fields in order (as views into the
// bytes given to put(); see detach()), and body bytes
// (chunked framing removed) collected in a sink the caller empties as it
// forwards. Trailer fields are read and dropped, as nginx drops them: they
// arrive after the head has gone out (or, when the whole response came in
// one read, would be mistaken for header fields), and a client that did not
// expect them must not get Set-Cookie or Location from them.
#include "bridge/net/request.hpp"

#include <boost/beast/http/basic_parser.hpp>

#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace trestle::proxy {

class response_parser : public boost::beast::http::basic_parser<false> {
public:
    // `head_request`: the response has no body whatever its fields say.
    response_parser(std::size_t max_header_bytes, bool head_request);

    unsigned status() const { return status_; }
    std::string_view reason() const { return reason_; }
    // The header's fields only. They point into the bytes given to put(),
    // which a whole head parsed at once leaves in place until it is relayed.
    const std::vector<net::field_view>& fields() const { return fields_; }
    // Copies the fields (and reason) seen so far out of the caller's buffer,
    // which is about to change: Beast reports the fields of a head that
    // arrives in pieces as each piece comes, and the caller consumes them.
    void detach();
    std::size_t trailers_dropped() const { return trailers_; }
    std::optional<std::string_view> find(std::string_view lower_name) const;
    std::string& body_sink() { return body_; }

private:
    void on_request_impl(boost::beast::http::verb, boost::beast::string_view, boost::beast::string_view, int,
                         boost::system::error_code&) override {}
    void on_response_impl(int code, boost::beast::string_view reason, int version,
                          boost::system::error_code& ec) override;
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

    std::string_view keep(std::string_view v);

    unsigned status_ = 0;
    std::string_view reason_;
    std::vector<net::field_view> fields_;
    std::deque<std::string> kept_;   // what detach() copied; a deque never moves its strings
    std::size_t kept_fields_ = 0;
    bool reason_kept_ = false;
    std::string transfer_encoding_;
    int te_lines_ = 0;
    std::string body_;
    std::size_t max_fields_ = 200;
    std::size_t trailers_ = 0;
};

} // namespace trestle::proxy
