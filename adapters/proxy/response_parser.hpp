#pragma once
// Reads an upstream's response with Beast's parser and keeps what the proxy
// relays: the status line, the header fields in order, and body bytes
// (chunked framing removed) collected in a sink the caller empties as it
// forwards. Trailer fields are read and dropped, as nginx drops them: they
// arrive after the head has gone out (or, when the whole response came in
// one read, would be mistaken for header fields), and a client that did not
// expect them must not get Set-Cookie or Location from them.
#include "bridge/net/request.hpp"

#include <boost/beast/http/basic_parser.hpp>

#include <string>
#include <vector>

namespace trestle::proxy {

class response_parser : public boost::beast::http::basic_parser<false> {
public:
    // `head_request`: the response has no body whatever its fields say.
    response_parser(std::size_t max_header_bytes, bool head_request);

    unsigned status() const { return status_; }
    const std::string& reason() const { return reason_; }
    const std::vector<net::header_field>& fields() const { return fields_; }   // the header's only
    std::size_t trailers_dropped() const { return trailers_; }
    const std::string* find(std::string_view lower_name) const;
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

    unsigned status_ = 0;
    std::string reason_;
    std::vector<net::header_field> fields_;
    std::string transfer_encoding_;
    int te_lines_ = 0;
    std::string body_;
    std::size_t max_fields_ = 200;
    std::size_t trailers_ = 0;
};

} // namespace trestle::proxy
