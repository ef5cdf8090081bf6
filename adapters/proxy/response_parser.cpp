#include "adapters/proxy/response_parser.hpp"
#include "bridge/net/http_util.hpp"

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/field.hpp>

namespace trestle::proxy {

namespace http = boost::beast::http;
using boost::system::error_code;

response_parser::response_parser(std::size_t max_header_bytes, bool head_request) {
    header_limit(static_cast<std::uint32_t>(max_header_bytes));
    body_limit(boost::none);   // streamed, never held whole
    skip(head_request);
    fields_.reserve(16);   // a typical response head, without regrowing
}

std::optional<std::string_view> response_parser::find(std::string_view lower_name) const {
    for (auto& f : fields_)
        if (net::ascii_iequals(f.name, lower_name)) return f.value;
    return std::nullopt;
}

std::string_view response_parser::keep(std::string_view v) {
    if (v.empty()) return {};
    return kept_.emplace_back(v);
}

void response_parser::detach() {
    // Each field is copied once: a head that trickles in costs no more.
    if (!reason_kept_ && status_ != 0) {   // the status line is in
        reason_ = keep(reason_);
        reason_kept_ = true;
    }
    for (std::size_t i = kept_fields_; i < fields_.size(); ++i) {
        fields_[i].name = keep(fields_[i].name);
        fields_[i].value = keep(fields_[i].value);
    }
    kept_fields_ = fields_.size();
}

void response_parser::on_response_impl(int code, boost::beast::string_view reason, int, error_code& ec) {
    status_ = static_cast<unsigned>(code);
    reason_ = std::string_view(reason.data(), reason.size());
    ec = {};
}

void response_parser::on_field_impl(http::field f, boost::beast::string_view name, boost::beast::string_view value,
                                    error_code& ec) {
    if (fields_.size() + trailers_ >= max_fields_) {
        ec = http::error::header_limit;
        return;
    }
    // Beast reports trailer fields through this same callback, once the
    // header is done; with eager parsing they can come in the same put()
    // as the header, before the caller has read fields().
    if (is_header_done()) {
        ++trailers_;
        ec = {};
        return;
    }
    if (f == http::field::transfer_encoding) {
        // Joined as one list; an empty line stays an (invalid) empty element.
        if (te_lines_++ > 0) transfer_encoding_ += ',';
        transfer_encoding_.append(value);
    }
    fields_.push_back({std::string_view(name.data(), name.size()), std::string_view(value.data(), value.size()),
                       static_cast<int>(f)});
    ec = {};
}

void response_parser::on_header_impl(error_code& ec) {
    ec = {};
    // Only chunked is undone here; a body still in another transfer coding
    // (gzip, ...) could not be passed on with its framing removed. The whole
    // value is checked, as for requests: `chunked x`, `chunked;foo` or a
    // second `chunked` is not taken as chunked framing (a 502).
    if (te_lines_ > 0 &&
        net::check_transfer_encoding(transfer_encoding_) != net::transfer_coding::chunked) {
        ec = http::error::bad_transfer_encoding;
        return;
    }
}

std::size_t response_parser::on_body_impl(boost::beast::string_view body, error_code& ec) {
    body_.append(body.data(), body.size());
    ec = {};
    return body.size();
}

std::size_t response_parser::on_chunk_body_impl(std::uint64_t, boost::beast::string_view body, error_code& ec) {
    body_.append(body.data(), body.size());
    ec = {};
    return body.size();
}

} // namespace trestle::proxy
