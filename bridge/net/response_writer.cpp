#include "bridge/net/response_writer.hpp"

#include "bridge/net/app_port.hpp"
#include "bridge/net/http_util.hpp"
#include "bridge/net/server_context.hpp"
#include "bridge/observability/log.hpp"

#include <charconv>

namespace trestle::net {

response_writer::response_writer(app_port& ex, const server_context& ctx)
    : ex_(ex), ctx_(ctx), no_body_(ex.head().head_method) {}

response_writer::~response_writer() {
    if (!finished_) finish(true);
}

void response_writer::set_head(unsigned status, std::string_view status_line, std::string fields,
                               std::optional<std::uint64_t> declared) {
    status_ = status;
    status_line_.assign(status_line);
    fields_ = std::move(fields);
    declared_ = declared;
}

bool response_writer::can_keep_alive() const {
    auto& h = ex_.head();
    if (!h.keep_alive || ctx_.draining.load(std::memory_order_relaxed)) return false;
    // The client may still be waiting for 100 Continue before sending the
    // body; only a fresh connection avoids reading it as the next request.
    if (h.expect_continue && !ex_.body_consumed()) return false;
    return true;
}

void response_writer::emit_head(std::optional<std::uint64_t> known_length) {
    if (head_emitted_) return;
    auto& h = ex_.head();
    bool bodiless_status = status_ < 200 || status_ == 204 || status_ == 304;
    no_body_ = no_body_ || bodiless_status;
    keep_alive_ = can_keep_alive() && !close_requested_;

    std::string& o = out_;
    o.reserve(o.size() + 256 + fields_.size());
    o += "HTTP/1.1 ";
    o += status_line_;
    o += "\r\n";
    std::size_t fields_at = o.size();
    o += fields_;
    if (!ctx_.server_header.empty()) {
        o += "Server: ";
        o += ctx_.server_header;
        o += "\r\n";
    }
    o += "Date: ";
    o += http_date();
    o += "\r\n";
    // For HEAD, an empty body says nothing about the GET length (Werkzeug
    // sends none), so only a non-empty one is taken as the length.
    if (h.head_method && known_length && *known_length == 0) known_length.reset();
    if (declared_) {
        if (status_ >= 200 && status_ != 204) {   // RFC 9110 8.6
            o += "Content-Length: ";
            o += std::to_string(*declared_);
            o += "\r\n";
        }
    } else if (!bodiless_status) {
        if (known_length) {
            o += "Content-Length: ";
            o += std::to_string(*known_length);
            o += "\r\n";
        } else if (h.head_method) {
            // No body follows, so no framing is needed.
        } else if (h.version >= 11) {
            chunked_ = true;
            o += "Transfer-Encoding: chunked\r\n";
        } else {
            keep_alive_ = false;   // HTTP/1.0: the close marks the end
        }
    }
    if (!keep_alive_) o += "Connection: close\r\n";
    else if (h.version == 10) o += "Connection: keep-alive\r\n";
    if (ctx_.log_response_head) ex_.set_response_head(std::string_view(o).substr(fields_at, o.size() - fields_at));
    o += "\r\n";
    head_emitted_ = true;
    ex_.set_status(status_);
}

void response_writer::append_body(std::string_view data) {
    if (data.empty() || no_body_) return;
    if (declared_) {
        std::uint64_t room = *declared_ - std::min(sent_, *declared_);
        if (data.size() > room) {
            if (keep_alive_ || room > 0)
                log::warning("app sent more body than its Content-Length; the excess is dropped");
            data = data.substr(0, room);
            keep_alive_ = false;
        }
        if (data.empty()) return;
    }
    if (chunked_) {
        char size[20];
        auto [p, ec] = std::to_chars(size, size + sizeof size, data.size(), 16);
        out_.append(size, p);
        out_ += "\r\n";
        out_.append(data);
        out_ += "\r\n";
    } else {
        out_.append(data);
    }
    add_sent(data.size());
}

void response_writer::add_sent(std::uint64_t n) {
    sent_ += n;
    ex_.add_body_bytes(n);
}

void response_writer::informational(unsigned status, std::string_view fields) {
    if (head_emitted_ || ex_.head().version == 10) return;
    out_ += "HTTP/1.1 ";
    out_ += std::to_string(status);
    out_ += ' ';
    out_ += reason_phrase(status);
    out_ += "\r\n";
    out_.append(fields);
    out_ += "\r\n";
}

void response_writer::end_body(std::string_view trailers) {
    if (chunked_) {
        out_ += "0\r\n";
        out_.append(trailers);
        out_ += "\r\n";
    }
    if (declared_ && sent_ < *declared_ && !no_body_) {
        log::warning("app sent less body than its Content-Length; closing the connection");
        keep_alive_ = false;
    }
}

void response_writer::error_response(unsigned status) {
    // After a framing or limit error the rest of the body cannot be trusted.
    bool keep = can_keep_alive() && status != 413 && status != 408 && status != 400;
    out_ = simple_response(status, ctx_.server_header, !keep, {}, ex_.head().head_method);
    if (ctx_.log_response_head) {
        std::string_view head(out_);
        std::size_t from = head.find("\r\n") + 2, to = head.find("\r\n\r\n") + 2;
        ex_.set_response_head(head.substr(from, to - from));
    }
    head_emitted_ = true;
    keep_alive_ = keep;
    status_ = status;
    ex_.set_status(status);
}

void response_writer::finish(bool client_gone) {
    if (finished_) return;
    finished_ = true;
    // The last bytes travel with the completion: one lock, one wakeup.
    if (client_gone) out_.clear();
    ex_.finish(keep_alive_ && !close_requested_ && !client_gone, out_);
}

} // namespace trestle::net
