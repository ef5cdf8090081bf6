#include "bridge/net/h2_connection.hpp"

#include "bridge/net/forwarded.hpp"
#include "bridge/net/http_util.hpp"
#include "bridge/net/server_context.hpp"
#include "bridge/net/session.hpp"
#include "bridge/net/transport.hpp"
#include "bridge/net/ws_channel.hpp"
#include "bridge/net/ws_session.hpp"
#include "bridge/observability/access_log.hpp"
#include "bridge/observability/log.hpp"
#include "bridge/observability/metrics.hpp"
#include "bridge/router/mount_table.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/field.hpp>

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <unistd.h>

namespace trestle::net {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using boost::system::error_code;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t read_size = 16 * 1024 + 9;     // one full frame and its header
constexpr std::size_t write_batch = 64 * 1024;       // frames gathered before a write
// A stream's receive window: how much request body may wait for its app.
constexpr std::int32_t stream_window = 256 * 1024;
// The connection's: the sum of what all its streams may have waiting.
constexpr std::int32_t connection_window = 1024 * 1024;
// Control frames (SETTINGS, PING, PRIORITY, RST_STREAM, WINDOW_UPDATE,
// empty DATA): a burst, then a steady rate per second. A browser sends a
// handful per page; thousands a second is an attack (CVE-2019-9512/9515/9518).
constexpr double control_burst = 1000;
constexpr double control_rate = 100;

nghttp2_nv nv(std::string_view name, std::string_view value) {
    return {reinterpret_cast<std::uint8_t*>(const_cast<char*>(name.data())),
            reinterpret_cast<std::uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
            NGHTTP2_NV_FLAG_NONE};
}

bool has_control_char(std::string_view v) {
    for (unsigned char c : v)
        if ((c < 0x20 && c != '\t') || c == 0x7f) return true;
    return false;
}

} // namespace

// ---- a stream --------------------------------------------------------------

struct h2_connection::stream final : h1_response_decoder::sink {
    h2_connection& c;
    std::int32_t id;
    request_head head;
    std::size_t header_bytes = 0;
    unsigned refuse = 0;          // answer this status instead of running an app
    bool has_host = false;
    bool head_method = false;
    std::string authority;
    route r;
    std::shared_ptr<exchange> ex;
    clock::time_point started = clock::now();
    clock::time_point body_progress = started;
    // The request body: bytes received that the app has not taken (their
    // window is still closed), or the whole body gathered for a WSGI app.
    std::string body_in;
    bool body_eof = false;
    bool app_wants_body = false;
    bool started_request = false;
    std::uint64_t body_received = 0;
    std::optional<body_buffer> gather;
    bool continue_sent = false;
    // The response.
    h1_response_decoder dec{false};
    std::optional<h1_response_decoder::fields> final_head;
    unsigned status = 0;
    bool head_submitted = false;
    std::string data;
    std::size_t data_pos = 0;
    std::optional<file_job> file;
    h1_response_decoder::fields trailers;
    bool ended = false;           // every body byte is known (in data or file)
    bool deferred = false;
    bool owe_written = false;
    bool app_done = false;
    bool broken = false;          // the app's output could not be read: reset
    clock::time_point out_progress = started;
    // A WebSocket (extended CONNECT, :protocol websocket): its frames move
    // through wsio, not through an exchange.
    std::string protocol;
    std::shared_ptr<ws_channel> ws;
    std::shared_ptr<h2_stream_io> wsio;
    bool ws_closing = false;

    stream(h2_connection& conn, std::int32_t sid) : c(conn), id(sid) {}

    std::size_t data_left() const { return data.size() - data_pos; }
    bool output_pending() const { return data_left() > 0 || file.has_value() || (wsio && wsio->output_pending()); }

    void on_head(unsigned st, h1_response_decoder::fields f, bool final) override {
        if (!final) {
            std::vector<nghttp2_nv> nva;
            std::string code = std::to_string(st);
            nva.push_back(nv(":status", code));
            for (auto& [n, v] : f) nva.push_back(nv(n, v));
            nghttp2_submit_headers(c.session_, NGHTTP2_FLAG_NONE, id, nullptr, nva.data(), nva.size(), nullptr);
            return;
        }
        status = st;
        final_head = std::move(f);
    }
    void on_body(std::string_view d) override {
        // Output waiting for the peer's window is timed from now, not from
        // when the stream began (an app may write after a long silence).
        if (!output_pending()) out_progress = clock::now();
        if (data_pos == data.size()) {
            data.clear();
            data_pos = 0;
        }
        data.append(d);
    }
    void on_end(h1_response_decoder::fields t) override {
        ended = true;
        trailers = std::move(t);
    }
};

// ---- nghttp2's callbacks -----------------------------------------------------

struct h2_connection::callbacks {
    static h2_connection& self(void* user) { return *static_cast<h2_connection*>(user); }

    static int on_begin_headers(nghttp2_session* s, const nghttp2_frame* frame, void* user) {
        auto& c = self(user);
        if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
        auto st = std::make_unique<stream>(c, frame->hd.stream_id);
        // Streams still open plus apps of reset streams still running: a
        // client that resets what it opened cannot get more work going than
        // the stream limit allows (CVE-2023-44487).
        std::size_t busy = c.streams_.size() + c.orphans_.size();
        if (busy >= c.ctx_.h2_max_streams) {
            st->refuse = 1;   // refused before any work: RST_STREAM(REFUSED_STREAM) when the head is in
        }
        nghttp2_session_set_stream_user_data(s, frame->hd.stream_id, st.get());
        c.streams_[frame->hd.stream_id] = std::move(st);
        c.idle_since_ = clock::time_point::max();
        return 0;
    }

    static int on_header(nghttp2_session* s, const nghttp2_frame* frame, const std::uint8_t* name, std::size_t namelen,
                         const std::uint8_t* value, std::size_t valuelen, std::uint8_t, void* user) {
        auto& c = self(user);
        if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;   // trailers: dropped
        auto* st = static_cast<stream*>(nghttp2_session_get_stream_user_data(s, frame->hd.stream_id));
        if (!st || st->refuse) return 0;
        std::string_view n(reinterpret_cast<const char*>(name), namelen);
        std::string_view v(reinterpret_cast<const char*>(value), valuelen);
        // RFC 9113 6.5.2's accounting: name, value and 32 per field. A
        // small block that expands past it (an HPACK bomb) is caught here.
        st->header_bytes += namelen + valuelen + 32;
        if (st->header_bytes > c.ctx_.limits.max_header_bytes + 32 * c.ctx_.limits.max_header_count ||
            st->head.headers.size() >= c.ctx_.limits.max_header_count) {
            st->refuse = 431;
            st->head.headers.clear();
            return 0;
        }
        if (has_control_char(v)) {
            st->refuse = 400;
            return 0;
        }
        if (n.starts_with(':')) {
            if (n == ":method") st->head.method.assign(v);
            else if (n == ":path") st->head.target.assign(v);
            else if (n == ":authority") st->authority.assign(v);
            else if (n == ":protocol") st->protocol.assign(v);   // nghttp2 lets it through only on CONNECT
            return 0;   // :scheme is the connection's own
        }
        int known = static_cast<int>(http::string_to_field(n));
        if (known == static_cast<int>(http::field::host)) st->has_host = true;
        if (known == static_cast<int>(http::field::content_length)) {
            std::uint64_t len = 0;
            auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), len);
            if (ec != std::errc{} || p != v.data() + v.size()) st->refuse = 400;
            st->head.content_length = len;
        }
        if (known == static_cast<int>(http::field::expect) && boost::beast::iequals(v, "100-continue"))
            st->head.expect_continue = true;
        st->head.headers.push_back(header_field{std::string(n), std::string(v), known});
        return 0;
    }

    static int on_frame_recv(nghttp2_session* s, const nghttp2_frame* frame, void* user) {
        auto& c = self(user);
        switch (frame->hd.type) {
        case NGHTTP2_SETTINGS:
        case NGHTTP2_PING:
            if (frame->hd.flags & NGHTTP2_FLAG_ACK) return 0;
            [[fallthrough]];
        case NGHTTP2_PRIORITY:
        case NGHTTP2_RST_STREAM:
        case NGHTTP2_WINDOW_UPDATE:
            if (!c.spend_control_token()) return 0;
            return 0;
        default: break;
        }
        auto* st = static_cast<stream*>(nghttp2_session_get_stream_user_data(s, frame->hd.stream_id));
        if (!st) return 0;
        if (frame->hd.type == NGHTTP2_DATA && frame->hd.length == 0 && !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
            c.spend_control_token();   // empty DATA frames cost like control frames
        if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
            if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) st->body_eof = true;
            c.start_request(*st);
            return 0;
        }
        if ((frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS) &&
            (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
            st->body_eof = true;
            if (st->wsio) st->wsio->end_input();
            else c.body_complete(*st);
        }
        return 0;
    }

    static int on_data_chunk(nghttp2_session* s, std::uint8_t, std::int32_t id, const std::uint8_t* data, std::size_t len,
                             void* user) {
        auto& c = self(user);
        auto* st = static_cast<stream*>(nghttp2_session_get_stream_user_data(s, id));
        if (st && st->wsio) {
            // Its window opens as the WebSocket reads (stream_consumed).
            st->wsio->deliver(reinterpret_cast<const char*>(data), len);
            return 0;
        }
        if (!st || st->refuse || st->app_done) {
            nghttp2_session_consume(s, id, len);   // nobody reads it: keep the connection's window open
            return 0;
        }
        st->body_received += len;
        st->body_progress = clock::now();
        if (st->body_received > c.ctx_.limits.max_body_bytes) {
            nghttp2_session_consume(s, id, len);
            if (!st->ex) {
                st->gather.reset();
                c.answer(*st, 413);
            } else {
                st->ex->body_failed(413);
                c.reset(*st, NGHTTP2_CANCEL);
            }
            return 0;
        }
        std::string_view chunk(reinterpret_cast<const char*>(data), len);
        if (st->gather) {
            nghttp2_session_consume(s, id, len);   // gathered at once, to memory or the temporary file
            std::string piece(chunk);
            if (!st->gather->append(piece)) {
                log::error("request body of " + st->head.method + " " + st->head.target + ": " + st->gather->error());
                st->gather.reset();
                c.answer(*st, 500);
            }
            return 0;
        }
        st->body_in.append(chunk);
        if (st->app_wants_body) {
            c.give_body(*st);
            c.to_drain_.push_back(id);   // take() again: it arms the exchange's wakeup
        }
        return 0;
    }

    static int on_stream_close(nghttp2_session*, std::int32_t id, std::uint32_t code, void* user) {
        self(user).stream_closed(id, code);
        return 0;
    }

    static ssize_t read_data(nghttp2_session* s, std::int32_t id, std::uint8_t* buf, std::size_t length,
                             std::uint32_t* flags, nghttp2_data_source* source, void* user) {
        auto& c = self(user);
        auto* st = static_cast<stream*>(source->ptr);
        std::size_t n = 0;
        if (st->wsio) {
            n = st->wsio->pull(buf, length);
            if (n > 0) st->out_progress = clock::now();
            if (st->wsio->output_ended()) {
                *flags |= NGHTTP2_DATA_FLAG_EOF;
                return static_cast<ssize_t>(n);
            }
            if (n > 0) return static_cast<ssize_t>(n);
            st->deferred = true;
            return NGHTTP2_ERR_DEFERRED;
        }
        if (st->data_left() > 0) {
            n = std::min(length, st->data_left());
            std::memcpy(buf, st->data.data() + st->data_pos, n);
            st->data_pos += n;
            if (st->data_pos == st->data.size()) {
                st->data.clear();
                st->data_pos = 0;
            }
        } else if (st->file) {
            auto& f = *st->file;
            std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(length, f.count));
            ssize_t got = ::pread(f.fd.get(), buf, want, static_cast<off_t>(f.offset));
            if (got <= 0) {
                if (st->ex) st->ex->file_sent(false);
                st->file.reset();
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;   // the stream is reset
            }
            n = static_cast<std::size_t>(got);
            f.offset += n;
            f.count -= n;
            if (f.count == 0) {
                st->file.reset();
                if (st->ex) st->ex->file_sent(true);
                c.to_drain_.push_back(id);   // what the app queued after the file
            }
        }
        if (n > 0) st->out_progress = clock::now();
        if (st->owe_written && st->data_left() == 0 && st->ex) {
            st->owe_written = false;
            st->ex->output_written();
        }
        if (!st->output_pending() && st->ended) {
            *flags |= NGHTTP2_DATA_FLAG_EOF;
            if (!st->trailers.empty()) {
                *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
                std::vector<nghttp2_nv> nva;
                for (auto& [k, v] : st->trailers) nva.push_back(nv(k, v));
                nghttp2_submit_trailer(s, id, nva.data(), nva.size());
            }
            return static_cast<ssize_t>(n);
        }
        if (n == 0) {
            st->deferred = true;
            return NGHTTP2_ERR_DEFERRED;
        }
        return static_cast<ssize_t>(n);
    }

    // A GOAWAY for an error that nghttp2 sent on its own (a protocol
    // error it found): nothing more is read.
    // A WebSocket's last DATA frame: the client has had its close frame
    // answered, and need send nothing more (RFC 9113 8.1: RST_STREAM
    // NO_ERROR after a complete response).
    static int on_frame_send(nghttp2_session* s, const nghttp2_frame* frame, void* user) {
        auto& c = self(user);
        if (frame->hd.type == NGHTTP2_GOAWAY) {
            c.goaway_sent_ = true;
            if (frame->goaway.error_code != NGHTTP2_NO_ERROR) {
                c.error_goaway_ = true;
                c.stop_reading();
            }
        }
        if (frame->hd.type == NGHTTP2_DATA && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
            auto* st = static_cast<stream*>(nghttp2_session_get_stream_user_data(s, frame->hd.stream_id));
            if (st && st->wsio && !st->wsio->input_ended())
                nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR);
        }
        return 0;
    }

    static int on_error(nghttp2_session*, int, const char* msg, std::size_t len, void* user) {
        log::debug("HTTP/2 from " + self(user).ep_.remote_addr + ": " + std::string(msg, len));
        return 0;
    }
};

// ---- the connection ------------------------------------------------------------

h2_connection::h2_connection(transport& io, const endpoint_info& ep, server_context& ctx, session_registry& reg)
    : io_(io), ep_(ep), ctx_(ctx), reg_(reg), idle_since_(clock::now()), write_progress_(clock::now()),
      control_tokens_(control_burst), control_refill_(clock::now()) {
    nghttp2_session_callbacks* cbs = nullptr;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, callbacks::on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, callbacks::on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, callbacks::on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, callbacks::on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, callbacks::on_stream_close);
    nghttp2_session_callbacks_set_error_callback2(cbs, callbacks::on_error);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, callbacks::on_frame_send);
    nghttp2_option* opt = nullptr;
    nghttp2_option_new(&opt);
    // Windows open as apps read their bodies, not as bytes arrive.
    nghttp2_option_set_no_auto_window_update(opt, 1);
    // Queued SETTINGS and PING acknowledgements a peer that does not read
    // may make us hold (CVE-2019-9512, 9515).
    nghttp2_option_set_max_outbound_ack(opt, 1000);
    nghttp2_option_set_max_settings(opt, 32);
    // RST_STREAM from the peer: a burst, then 33 a second (CVE-2023-44487);
    // CONTINUATION frames per header block (CVE-2024-27316).
    nghttp2_option_set_stream_reset_rate_limit(opt, 1000, 33);
    nghttp2_option_set_max_continuations(opt, 8);
    nghttp2_session_server_new2(&session_, cbs, this, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
}

h2_connection::~h2_connection() {
    for (auto& [id, st] : streams_) {
        if (st->ex) {
            st->ex->set_driver(nullptr);
            st->ex->abort();
        }
        if (st->wsio) st->wsio->fail();
    }
    if (session_) nghttp2_session_del(session_);
}

bool h2_connection::spend_control_token() {
    auto now = clock::now();
    double elapsed = std::chrono::duration<double>(now - control_refill_).count();
    control_refill_ = now;
    control_tokens_ = std::min(control_burst, control_tokens_ + elapsed * control_rate);
    control_tokens_ -= 1;
    if (control_tokens_ >= 0) return true;
    calm_down("too many control frames (SETTINGS, PING, PRIORITY, RST_STREAM, WINDOW_UPDATE or empty DATA)");
    return false;
}

void h2_connection::calm_down(const char* why) {
    if (goaway_sent_ && reading_done_) return;
    log::info("HTTP/2 connection from " + ep_.remote_addr + " closed: " + why);
    nghttp2_session_terminate_session(session_, NGHTTP2_ENHANCE_YOUR_CALM);
    goaway_sent_ = true;
    stop_reading();   // the writer sends the GOAWAY
}

void h2_connection::stop_reading() {
    if (reading_done_) return;
    reading_done_ = true;
    read_cancel_.emit(asio::cancellation_type::terminal);
}

asio::awaitable<void> h2_connection::run(std::string early) {
    auto self = shared_from_this();
    nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, static_cast<std::uint32_t>(ctx_.h2_max_streams)},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, stream_window},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
         static_cast<std::uint32_t>(ctx_.limits.max_header_bytes + 32 * ctx_.limits.max_header_count)},
        {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1},   // the last: left out below when off
    };
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings,
                            std::size(settings) - (ctx_.h2_websockets ? 0 : 1));
    nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, connection_window);
    kick_.emplace(io_.get_executor());
    asio::co_spawn(io_.get_executor(), [self]() { return self->writer(); }, asio::detached);

    std::string buf = std::move(early);
    for (;;) {
        if (!buf.empty()) {
            ++in_nghttp2_;
            ssize_t rv = nghttp2_session_mem_recv(session_, reinterpret_cast<const std::uint8_t*>(buf.data()), buf.size());
            --in_nghttp2_;
            if (rv < 0) {
                log::debug("HTTP/2 from " + ep_.remote_addr + ": " + nghttp2_strerror(static_cast<int>(rv)));
                if (rv == NGHTTP2_ERR_BAD_CLIENT_MAGIC) break;   // not HTTP/2 at all: just close
                // Say why before closing, if nghttp2 has not already.
                std::uint32_t code = rv == NGHTTP2_ERR_FLOODED || rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS
                                         ? NGHTTP2_ENHANCE_YOUR_CALM
                                         : NGHTTP2_PROTOCOL_ERROR;
                if (!goaway_sent_) nghttp2_session_terminate_session(session_, code);
                goaway_sent_ = true;
                reading_done_ = true;
                flush();
                break;
            }
        }
        flush();
        // nghttp2 wants no more input once it has ended the session (a
        // GOAWAY for an error): the writer sends what is left.
        if (closed_ || reading_done_ || finished() || !nghttp2_session_want_read(session_)) break;
        buf.resize(read_size);
        auto [ec, n] = co_await io_.async_read_some(asio::buffer(buf),
                                                     asio::bind_cancellation_slot(read_cancel_.slot(), use_tuple));
        if (ec) {
            peer_closed_ = ec != asio::error::operation_aborted;
            break;
        }
        buf.resize(n);
    }
    reading_done_ = true;
    // Let the writer send what is queued (a GOAWAY, the last frames), then
    // close; a client that reads nothing is cut by the io timeout.
    flush();
    kick_writer();
    writer_exit_.emplace(io_.get_executor());
    while (writer_running_ && !closed_) {
        writer_exit_->expires_after(ctx_.limits.io_timeout);
        auto [ec] = co_await writer_exit_->async_wait(use_tuple);
        if (!ec) break;   // timed out
    }
    // The GOAWAY went out whole while the client may still be sending: the
    // rest of the frame that broke the rules, after an error; a request that
    // crossed a graceful GOAWAY (its bytes already here). Closing on unread
    // bytes answers them with a reset, which can destroy the GOAWAY unread
    // and fails the client's writes: the session lingers (session::linger).
    linger_ = goaway_sent_ && !peer_closed_ && !closed_ && !writer_running_ && out_.empty() &&
              (error_goaway_ || io_.available() > 0);
    close_now();
}

bool h2_connection::finished() const {
    if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) return true;
    return goaway_sent_ && streams_.empty() && out_.empty();
}

// ---- requests --------------------------------------------------------------------

void h2_connection::start_request(stream& st) {
    if (st.refuse == 1) {
        nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, st.id, NGHTTP2_REFUSED_STREAM);
        return;
    }
    st.started_request = true;
    // The last stream id a client may use: no stream can follow, so say
    // goodbye now (this one is still served) and the client reconnects.
    if (st.id == 0x7fffffff) goaway();
    request_head& h = st.head;
    h.version = 20;
    h.keep_alive = true;
    h.head_method = h.method == "HEAD";
    st.head_method = h.head_method;
    st.dec = h1_response_decoder(h.head_method);
    if (!st.has_host && !st.authority.empty())
        h.headers.insert(h.headers.begin(),
                         header_field{"host", st.authority, static_cast<int>(http::field::host)});
    if (st.refuse) return answer(st, st.refuse);
    if (h.method == "CONNECT") return st.protocol.empty() ? answer(st, 405) : start_websocket(st);
    if (h.target.empty() || (h.target[0] != '/' && h.target != "*")) return answer(st, 400);
    if (h.content_length && *h.content_length > ctx_.limits.max_body_bytes) return answer(st, 413);
    if (ctx_.request_limit > 0 &&
        ctx_.requests_seen.fetch_add(1, std::memory_order_relaxed) + 1 == ctx_.request_limit)
        ctx_.on_request_limit();
    st.r = (ep_.router ? ep_.router : ctx_.router)->resolve(h);
    if (!st.body_eof && st.r.duties.buffer_body) {
        // A WSGI app gets its body whole, as over HTTP/1.1: a slow upload
        // holds this stream, never a pool thread.
        st.gather.emplace(ctx_.body_buffer_bytes, ctx_.body_temp_dir, h.content_length);
        if (h.expect_continue) {
            st.continue_sent = true;
            nghttp2_nv status = nv(":status", "100");
            nghttp2_submit_headers(session_, NGHTTP2_FLAG_NONE, st.id, nullptr, &status, 1, nullptr);
        }
        return;
    }
    submit_exchange(st);
}

void h2_connection::start_websocket(stream& st) {
    request_head& h = st.head;
    // RFC 8441 4: an extended CONNECT names the protocol; WebSocket is the
    // only one served.
    if (st.protocol != "websocket") return answer(st, 501);
    if (h.target.empty() || h.target[0] != '/') return answer(st, 400);
    if (unsigned status = h2_websocket_status(h)) return answer(st, status);
    h.method = "GET";   // what the app and the access log see, as over HTTP/1.1
    st.r = (ep_.router ? ep_.router : ctx_.router)->resolve(h);
    if (!st.r.duties.websocket) return answer(st, 400);   // a mount that takes no WebSocket, as over HTTP/1.1
    endpoint_info ep = ep_;
    if (ep_.trusted_peer) apply_forwarded(h, ctx_.trusted, ep);
    auto ch = std::make_shared<ws_channel>(io_.get_executor(), std::move(h), ep, ctx_.output_hwm);
    if (!st.r.target->submit_websocket(ch)) return answer(st, 503);
    st.ws = ch;
    st.wsio = std::make_shared<h2_stream_io>(io_.get_executor(), static_cast<h2_stream_link*>(this), st.id);
    if (st.body_eof) st.wsio->end_input();   // END_STREAM on the HEADERS: the client sends nothing
    // The stream's window opens as the WebSocket reads: frames that wait
    // for the app hold the client back, as TCP does over HTTP/1.1.
    asio::co_spawn(
        io_.get_executor(),
        [io = st.wsio, ch, &ctx = ctx_]() -> asio::awaitable<void> {
            metrics::registry* stats = metrics::current();
            if (stats) stats->websocket_opened();
            co_await serve_websocket(*io, ch, ctx);
            if (stats) stats->websocket_closed();
        },
        asio::detached);
}

h2_connection::stream* h2_connection::find(std::int32_t id) {
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second.get();
}

void h2_connection::stream_consumed(std::int32_t id, std::size_t n) {
    if (closed_) return;
    nghttp2_session_consume(session_, id, n);
    flush();
}

void h2_connection::stream_output(std::int32_t id) {
    stream* st = find(id);
    if (!st || closed_) return;
    if (st->deferred) {
        st->deferred = false;
        nghttp2_session_resume_data(session_, id);
    }
    flush();
}

void h2_connection::stream_answer(std::int32_t id, const ws_command& first) {
    stream* st = find(id);
    if (!st || closed_) return;
    if (first.kind != ws_command::accept) {
        // The denial, as over HTTP/1.1 but on the stream: its status,
        // fields and body, then END_STREAM.
        st->wsio->fail();
        st->wsio.reset();
        st->app_done = true;
        if (!st->dec.feed(websocket_denial(first, ctx_), *st) || !st->dec.finish(*st)) return reset(*st, NGHTTP2_INTERNAL_ERROR);
    } else {
        std::string head = "HTTP/1.1 200 OK\r\n";
        if (!ctx_.server_header.empty()) head += "Server: " + ctx_.server_header + "\r\n";
        if (!first.subprotocol.empty()) head += "Sec-WebSocket-Protocol: " + first.subprotocol + "\r\n";
        for (auto& [n, v] : first.headers) head += n + ": " + v + "\r\n";
        head += "\r\n";
        // The head only; the body is the WebSocket's frames (read_data).
        if (!st->dec.feed(head, *st) || !st->final_head) {
            log::error("HTTP/2 stream " + std::to_string(id) + ": the WebSocket's response fields could not be read");
            return reset(*st, NGHTTP2_INTERNAL_ERROR);
        }
    }
    submit_head(*st);
    resume(*st);
    flush();
}

void h2_connection::stream_abort(std::int32_t id) {
    if (closed_ || !find(id)) return;
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    flush();
}

void h2_connection::body_complete(stream& st) {
    if (st.gather) {
        submit_exchange(st);
        return;
    }
    if (st.ex && st.app_wants_body) {
        give_body(st);
        to_drain_.push_back(st.id);
    }
}

void h2_connection::submit_exchange(stream& st) {
    endpoint_info ep = ep_;
    if (ep_.trusted_peer) apply_forwarded(st.head, ctx_.trusted, ep);
    std::string method = st.head.method, target = st.head.target;
    if (st.gather) {
        // The body is whole: the app sees a Content-Length, as behind nginx.
        if (!st.head.content_length) {
            st.head.content_length = st.gather->size();
            st.head.headers.push_back(header_field{"content-length", std::to_string(st.gather->size()),
                                                   static_cast<int>(http::field::content_length)});
        }
        st.head.expect_continue = false;
    }
    auto ex = std::make_shared<exchange>(reg_.wakes(), std::move(st.head), ep, ctx_.output_hwm);
    ex->set_driver(this);
    if (st.gather) {
        if (st.gather->spilled()) ex->preload_body_file(st.gather->take_file());
        else ex->preload_body(st.gather->take_memory());
        st.gather.reset();
    } else if (st.body_eof && st.body_in.empty()) {
        ex->preload_body({});
    }
    st.ex = ex;
    st.started = clock::now();
    by_exchange_[ex.get()] = st.id;
    metrics::registry* stats = metrics::current();
    if (stats) stats->request_started(st.r.mount);
    if (!st.r.target->submit(ex)) {
        ex->set_driver(nullptr);
        by_exchange_.erase(ex.get());
        st.ex.reset();
        if (stats) {
            stats->request_shed(st.r.mount);
            stats->request_finished(st.r.mount, 503, 0, 0, 0);
        }
        answer(st, 503);
        return;
    }
    // The first take arms the exchange's wakeup: whatever the app produces
    // from now on reaches exchange_ready.
    drain(st);
}

void h2_connection::answer(stream& st, unsigned status) {
    std::string extra;
    if (status == 503) extra = "Retry-After: " + ctx_.retry_after + "\r\n";
    std::string r = simple_response(status, ctx_.server_header, false, extra, st.head_method);
    st.app_done = true;
    st.dec = h1_response_decoder(st.head_method);
    st.data.clear();
    st.data_pos = 0;
    st.final_head.reset();
    if (!st.dec.feed(r, st)) return reset(st, NGHTTP2_INTERNAL_ERROR);
    submit_head(st);
    resume(st);
}

void h2_connection::give_body(stream& st) {
    if (!st.ex) return;
    // An interim 100 goes out only before the app's own response.
    if (st.ex->head().expect_continue && !st.continue_sent && !st.ex->output_started()) {
        st.continue_sent = true;
        nghttp2_nv status = nv(":status", "100");
        nghttp2_submit_headers(session_, NGHTTP2_FLAG_NONE, st.id, nullptr, &status, 1, nullptr);
    }
    if (st.body_in.empty() && !st.body_eof) {
        st.app_wants_body = true;
        return;
    }
    st.app_wants_body = false;
    std::size_t n = st.body_in.size();
    st.ex->push_body(st.body_in, st.body_eof);
    // The app has taken these bytes: the peer may send as many more.
    if (n > 0) nghttp2_session_consume(session_, st.id, n);
}

void h2_connection::exchange_ready(protocol_port& p) {
    auto it = by_exchange_.find(&p);
    if (it == by_exchange_.end()) return;
    auto sit = streams_.find(it->second);
    if (sit == streams_.end()) return;
    drain(*sit->second);
    flush();
}

void h2_connection::drain(stream& st) {
    // Done is the last thing an exchange reports (take() repeats it): no take after it.
    while (st.ex && !st.file && !st.broken && !st.app_done) {
        io_work w;
        if (!st.ex->take(w)) break;
        if (!w.out.empty()) {
            if (!st.dec.feed(w.out, st)) {
                log::error("HTTP/2 stream " + std::to_string(st.id) + ": the response could not be read back");
                st.broken = true;
            }
            if (st.data_left() == 0) st.ex->output_written();
            else st.owe_written = true;
        }
        if (w.file) {
            st.dec.skip(w.file->count, st);
            if (w.file->count > 0) st.file = std::move(w.file);
            else st.ex->file_sent(true);
        }
        if (w.want_body) {
            give_body(st);
            // Nothing to give yet: take() would report the wish again and
            // again. The next DATA frame gives the body and drains anew.
            if (st.app_wants_body) break;
        }
        if (w.done) {
            st.app_done = true;
            if (!st.dec.finish(st) && !st.file) st.broken = true;
        }
    }
    if (st.broken) return reset(st, NGHTTP2_INTERNAL_ERROR);
    submit_head(st);
    resume(st);
}

void h2_connection::submit_head(stream& st) {
    if (st.head_submitted || !st.final_head) return;
    st.head_submitted = true;
    std::vector<nghttp2_nv> nva;
    std::string code = std::to_string(st.status);
    nva.reserve(st.final_head->size() + 1);
    nva.push_back(nv(":status", code));
    for (auto& [n, v] : *st.final_head) nva.push_back(nv(n, v));
    bool bodiless = st.ended && !st.output_pending() && st.trailers.empty();
    nghttp2_data_provider prd{};
    prd.source.ptr = &st;
    prd.read_callback = callbacks::read_data;
    nghttp2_submit_response(session_, st.id, nva.data(), nva.size(), bodiless ? nullptr : &prd);
    st.final_head.reset();
}

void h2_connection::resume(stream& st) {
    if (st.deferred && (st.output_pending() || st.ended)) {
        st.deferred = false;
        nghttp2_session_resume_data(session_, st.id);
    }
}

void h2_connection::reset(stream& st, std::uint32_t code) {
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, st.id, code);
}

void h2_connection::stream_closed(std::int32_t id, std::uint32_t code) {
    auto it = streams_.find(id);
    if (it == streams_.end()) return;
    stream& st = *it->second;
    if (st.wsio) {
        // What the peer sent that the WebSocket will never read.
        if (st.wsio->unread() > 0) nghttp2_session_consume_connection(session_, st.wsio->unread());
        st.wsio->fail();   // Beast's pending read ends: the app sees websocket.disconnect (1006 unless a close came)
    }
    if (st.ws) {
        st.ws->wakeup_timer().cancel();
        st.ws->reader_timer().cancel();
    }
    if (st.ex) {
        bool complete = st.app_done && st.ended && !st.output_pending();
        st.ex->set_driver(nullptr);
        by_exchange_.erase(st.ex.get());
        if (!complete) {
            st.ex->abort();   // the app sees the client gone
            if (!st.app_done) orphans_.push_back(st.ex);
        }
        if (ctx_.access) ctx_.access->record(*st.ex, st.started, st.ex->finished_at());
        if (auto* stats = metrics::current()) record_metrics(*stats, st.r.mount, *st.ex, st.started);
    }
    // Whatever the peer sent that nobody will read still counts against the
    // connection's window.
    if (!st.body_in.empty()) nghttp2_session_consume_connection(session_, st.body_in.size());
    streams_.erase(it);
    if (streams_.empty()) {
        idle_since_ = clock::now();
        if (goaway_sent_) stop_reading();   // the drain: the last stream is done
    }
    (void)code;
}

// ---- output ----------------------------------------------------------------------

bool h2_connection::fill_output() {
    // Streams whose file ended inside a callback may have more queued.
    while (!to_drain_.empty()) {
        std::vector<std::int32_t> ids;
        ids.swap(to_drain_);
        for (auto id : ids)
            if (auto it = streams_.find(id); it != streams_.end()) drain(*it->second);
    }
    while (out_.size() < write_batch) {
        const std::uint8_t* data = nullptr;
        ++in_nghttp2_;
        ssize_t n = nghttp2_session_mem_send(session_, &data);
        --in_nghttp2_;
        if (n < 0) {
            log::debug("HTTP/2 to " + ep_.remote_addr + ": " + nghttp2_strerror(static_cast<int>(n)));
            close_now();
            return false;
        }
        if (n == 0) break;
        out_.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
        if (!to_drain_.empty() && out_.size() < write_batch) {
            std::vector<std::int32_t> ids;
            ids.swap(to_drain_);
            for (auto id : ids)
                if (auto it = streams_.find(id); it != streams_.end()) drain(*it->second);
        }
    }
    return true;
}

void h2_connection::flush() {
    if (closed_ || in_nghttp2_ > 0) return;
    // With the writer idle, frames go out from here, at once; the writer
    // takes over only when the socket will not take them all.
    while (!writer_running_ || writer_waiting_) {
        if (!fill_output() || out_.empty()) break;
        std::size_t before = out_.size();
        bool all = io_.write_now(out_);
        if (out_.size() < before) write_progress_ = clock::now();
        if (!all) break;
    }
    kick_writer();
}

void h2_connection::kick_writer() {
    if (writer_waiting_ && kick_) kick_->cancel();
}

asio::awaitable<void> h2_connection::writer() {
    auto self = shared_from_this();
    writer_running_ = true;
    while (!closed_) {
        if (out_.empty() && !fill_output()) break;
        if (out_.empty()) {
            if (reading_done_) break;
            writer_waiting_ = true;
            kick_->expires_at(asio::steady_timer::time_point::max());
            co_await kick_->async_wait(use_tuple);
            writer_waiting_ = false;
            continue;
        }
        auto [ec, n] = co_await io_.async_write_some(asio::buffer(out_), use_tuple);
        if (ec) {
            close_now();
            break;
        }
        out_.erase(0, n);
        write_progress_ = clock::now();
    }
    writer_running_ = false;
    writer_waiting_ = false;
    if (writer_exit_) writer_exit_->cancel();
}

// ---- time and shutdown ---------------------------------------------------------------

void h2_connection::check_deadline(clock::time_point now) {
    if (closed_) return;
    // Apps of reset streams that have finished no longer count.
    std::erase_if(orphans_, [](const std::shared_ptr<exchange>& ex) { return ex->finished_at() != clock::time_point{}; });
    if (!out_.empty() && now - write_progress_ > ctx_.limits.io_timeout) {
        log::debug("HTTP/2 connection from " + ep_.remote_addr + ": the client read nothing for --io-timeout");
        if (auto* stats = metrics::current()) stats->timed_out(metrics::timeout_kind::write);
        close_now();
        return;
    }
    if (streams_.empty() && idle_since_ != clock::time_point::max() && now - idle_since_ > ctx_.limits.keepalive_timeout) {
        // Idle: say goodbye (GOAWAY), then the connection ends.
        if (!goaway_sent_) {
            if (auto* stats = metrics::current()) stats->timed_out(metrics::timeout_kind::keepalive);
            close_if_idle();
        }
        else stop_reading();
        return;
    }
    bool any = false;
    for (auto& [id, stp] : streams_) {
        stream& st = *stp;
        if (!st.started_request) {
            // A header block still incomplete (CONTINUATION frames trickling in).
            if (now - st.started > ctx_.limits.header_timeout) {
                if (auto* stats = metrics::current()) stats->timed_out(metrics::timeout_kind::header);
                calm_down("a request head took longer than --header-timeout");
                return;
            }
            continue;
        }
        if (st.ex && ctx_.request_timeout.count() > 0 && st.ex->timeout_due(now)) {
            auto verdict = st.ex->time_out();
            if (verdict != protocol_port::timeout_verdict::none)
                if (auto* stats = metrics::current()) stats->timed_out(metrics::timeout_kind::request);
            if (verdict == protocol_port::timeout_verdict::answer) {
                st.ex->set_driver(nullptr);
                by_exchange_.erase(st.ex.get());
                orphans_.push_back(st.ex);
                if (ctx_.access) ctx_.access->record(*st.ex, st.started, now);
                if (auto* stats = metrics::current()) record_metrics(*stats, st.r.mount, *st.ex, st.started, 504);
                st.ex.reset();
                answer(st, 504);
                any = true;
            } else if (verdict == protocol_port::timeout_verdict::close) {
                reset(st, NGHTTP2_INTERNAL_ERROR);
                any = true;
            }
        }
        // A peer that never opens its window, or never reads.
        if (st.output_pending() && now - st.out_progress > ctx_.limits.io_timeout) {
            log::debug("HTTP/2 stream " + std::to_string(id) + ": no window for --io-timeout");
            if (auto* stats = metrics::current()) stats->timed_out(metrics::timeout_kind::write);
            reset(st, NGHTTP2_CANCEL);
            any = true;
        }
        // A body that stalls.
        bool waiting_body = !st.body_eof && (st.gather || st.app_wants_body);
        if (waiting_body && now - st.body_progress > ctx_.limits.io_timeout) {
            if (auto* stats = metrics::current()) stats->timed_out(metrics::timeout_kind::body);
            if (st.gather) {
                st.gather.reset();
                answer(st, 408);
            } else if (st.ex) {
                st.ex->body_failed(408);
                reset(st, NGHTTP2_CANCEL);
            }
            any = true;
        }
    }
    if (any) flush();
}

void h2_connection::close_if_idle() {
    // WebSockets are told the server is going away (1001), as over HTTP/1.1.
    for (auto& [id, st] : streams_)
        if (st->ws && st->wsio && !st->ws_closing) {
            st->ws_closing = true;
            ws_command c{};
            c.kind = ws_command::close;
            c.code = 1001;
            c.reason = "server shutting down";
            st->ws->command(std::move(c));
        }
    goaway();
}

void h2_connection::goaway() {
    if (closed_ || goaway_sent_) return;
    goaway_sent_ = true;
    nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session_),
                          NGHTTP2_NO_ERROR, nullptr, 0);
    flush();
    if (streams_.empty()) stop_reading();   // run() lets the writer send the GOAWAY
}

void h2_connection::close_now() {
    if (closed_) return;
    closed_ = true;
    for (auto& [id, st] : streams_) {
        if (st->ex) {
            st->ex->set_driver(nullptr);
            by_exchange_.erase(st->ex.get());
            st->ex->abort();
        }
        if (st->wsio) st->wsio->fail();
        if (st->ws) {
            st->ws->wakeup_timer().cancel();
            st->ws->reader_timer().cancel();
        }
    }
    if (kick_) kick_->cancel();
    error_code ec;
    io_.cancel(ec);
}

} // namespace trestle::net
