#include "bridge/net/session.hpp"

#include "bridge/core/handler.hpp"
#include "bridge/router/mount_table.hpp"
#include "bridge/net/drained_read.hpp"
#include "bridge/net/exchange.hpp"
#include "bridge/net/forwarded.hpp"
#include "bridge/net/h2_connection.hpp"
#include "bridge/net/http_util.hpp"
#include "bridge/net/request_parser.hpp"
#include "bridge/net/server_context.hpp"
#include "bridge/net/ws_session.hpp"
#include "bridge/observability/access_log.hpp"
#include "bridge/observability/metrics.hpp"
#include "bridge/observability/log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/field.hpp>

#include <algorithm>
#include <cerrno>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

namespace trestle::net {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using boost::system::error_code;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

namespace {
constexpr std::size_t read_chunk = 16 * 1024;
// How long a connection closed after a refused body keeps reading (and
// dropping) what the client still sends; see session::linger.
constexpr auto linger_time = std::chrono::seconds(2);
constexpr std::size_t body_chunk = 64 * 1024;
// After the app answers without reading the whole body, up to this much is
// read and discarded to keep the connection; beyond it the connection closes.
constexpr std::uint64_t drain_limit = 1 << 20;
// A file sent over TLS without kernel TLS goes through memory this much at a time.
constexpr std::size_t tls_file_piece = 64 * 1024;
} // namespace

session::session(generic_socket socket, endpoint_info ep, std::shared_ptr<tls_context> tls, server_context& ctx,
                 session_registry& reg)
    : io_(std::move(socket)), tls_(std::move(tls)), ep_(std::move(ep)), ctx_(ctx), reg_(reg),
      rate_(ctx.limits.min_body_rate, ctx.limits.body_rate_window) {
    reg_pos_ = reg_.add(this);
    ep_.trusted_peer = !ctx_.trusted.empty() && ctx_.trusted.trusts(ep_);
    speak(metrics::conn_protocol::http1);
}

void session::speak(std::optional<metrics::conn_protocol> p) {
    if (auto* stats = metrics::current()) stats->connection_moved(proto_, p);
    proto_ = p;
}

void session::count_timeout(metrics::timeout_kind k) {
    if (auto* stats = metrics::current()) stats->timed_out(k);
}

session::~session() {
    if (current_) {
        current_->set_driver(nullptr);
        current_->abort();
    }
    reg_.remove(reg_pos_);
    if (counted_idle_)
        if (auto* stats = metrics::current()) stats->connection_idle(false);
    speak(std::nullopt);
}

void session::set_phase(phase ph) {
    auto now = clock::now();
    switch (ph) {
    case phase::handshake: deadline_ = now + ctx_.limits.handshake_timeout; break;
    case phase::idle:
        deadline_ = now + ctx_.limits.keepalive_timeout;
        idle_since_ = now;
        break;
    case phase::head:
        if (phase_ != phase::head) deadline_ = now + ctx_.limits.header_timeout;
        break;
    case phase::body:
        // A stall ends at --io-timeout; a trickle, at the rate's deadline.
        deadline_ = std::min(now + ctx_.limits.io_timeout, rate_.deadline());
        break;
    case phase::write: deadline_ = now + ctx_.limits.io_timeout; break;
    case phase::app: deadline_ = clock::time_point::max(); break;
    case phase::linger: deadline_ = now + linger_time; break;
    }
    phase_ = ph;
    if ((ph == phase::idle) != counted_idle_) {
        counted_idle_ = ph == phase::idle;
        if (auto* stats = metrics::current()) stats->connection_idle(counted_idle_);
    }
}

void session::interrupt_watch() {
    if (!watch_reading_) return;
    error_code ec;
    io_.cancel(ec);
}

void session::exchange_ready(protocol_port& ex) {
    if (&ex != current_.get() || closed_) return;
    if (!watch_reading_) {
        ex.cancel_wakeup();   // the pump waits on the timer: it takes the work itself
        return;
    }
    // The pump waits on a read of the socket: the body is in and nothing more
    // is expected from the client until the response is out. What the app
    // produced is written from here, without resuming the pump; a response
    // that completes with keep-alive leaves the connection idle, and the
    // client's next request (or its leaving) resumes the pump. Anything more
    // (the rest of a write the socket would not take, a file, a close) goes
    // to the pump.
    for (;;) {
        io_work w;
        if (!ex.take(w)) return;   // all done for now; the next output wakes this again
        if (w.file || w.want_body || !io_.write_now(w.out)) {
            carry_ = std::move(w);
            interrupt_watch();
            return;
        }
        ex.output_written();
        if (w.done) {
            bool idle = w.keep_alive;
            carry_ = std::move(w);
            if (idle) set_phase(phase::idle);   // the keep-alive timeout starts now
            else interrupt_watch();
            return;
        }
    }
}

void session::begin_boundary_wait(bool drained) {
    boundary_wait_ = drained;
    boundary_checked_ = false;
}

// A drained read (drained_read.hpp) waits for epoll's next edge. New bytes
// always raise one, but an end of stream (or a reset) that arrived together
// with the last bytes read had its edge then, so the read would not wake for
// it. Once per such wait, on the registry's tick, one peek looks: a client
// that sent its last request and closed is then noticed within a tick or
// two, rather than at the keep-alive timeout (or, for an app watching for
// disconnect, never). A wait shorter than a tick (nearly all under load)
// costs nothing.
void session::check_boundary_eof() {
    boundary_checked_ = true;
    if (!io_.peer_gone()) return;
    peer_eof_ = true;
    error_code ec;
    io_.cancel(ec);   // the read ends as aborted, which peer_eof_ turns into end of stream
}

void session::check_deadline(clock::time_point now) {
    if (h2_ && !h2_done_) {
        if (!closed_) h2_->check_deadline(now);
        return;
    }
    if (boundary_wait_ && !boundary_checked_ && !closed_) check_boundary_eof();
    // The request timeout rides on this scan too: no timer per request.
    if (ctx_.request_timeout.count() > 0 && current_ && !closed_ && current_->timeout_due(now)) request_timed_out();
    if (closed_ || now < deadline_) return;
    timed_out_ = true;
    deadline_ = clock::time_point::max();
    switch (phase_) {
    case phase::handshake: count_timeout(metrics::timeout_kind::handshake); break;
    case phase::idle: count_timeout(metrics::timeout_kind::keepalive); break;
    case phase::head: count_timeout(metrics::timeout_kind::header); break;
    case phase::body: count_timeout(metrics::timeout_kind::body); break;
    case phase::write: count_timeout(metrics::timeout_kind::write); break;
    case phase::app:
    case phase::linger: break;
    }
    if (phase_ == phase::idle) {
        close_now();
        return;
    }
    error_code ec;
    io_.cancel(ec);
}

void session::request_timed_out() {
    auto verdict = current_->time_out();   // the app side learns of it from the exchange
    if (verdict == protocol_port::timeout_verdict::none) return;
    count_timeout(metrics::timeout_kind::request);
    // Once the response has started, the client cannot be told: close. The
    // same while a 100 Continue is being written, which must not be cut.
    if (verdict == protocol_port::timeout_verdict::close || phase_ == phase::write) {
        close_now();
        return;
    }
    // Nothing sent: the pump stops waiting (for the app, or for body the
    // app asked for) and serve() answers 504.
    answer_timeout_ = true;
    current_->cancel_wakeup();
    if (watch_reading_ || phase_ == phase::body) {
        error_code ec;
        io_.cancel(ec);
    }
}

void session::close_if_idle() {
    if (h2_ && !h2_done_) return h2_->close_if_idle();
    // A tunnel has no message boundary to stop at, nor a protocol to say
    // goodbye in: it closes at once.
    if (tunnelling_) close_now();
    // A keep-alive client that has just read its response may be sending
    // its next request at this moment: closing under it fails that request
    // (a reset, or an empty reply), which a reload under load must not do.
    // So a connection closes here only once it has been idle for
    // drain_idle_grace with nothing waiting to be read; a request that comes
    // first is served, with Connection: close.
    if (phase_ == phase::idle) {
        bool waiting = io_.available() > 0;
        if (!waiting && clock::now() - idle_since_ >= drain_idle_grace) close_now();
    }
    // On graceful shutdown a WebSocket is told the server is going away
    // (1001); the app then sees websocket.disconnect.
    if (current_ws_ && !ws_closing_) {
        ws_closing_ = true;
        ws_command c{};
        c.kind = ws_command::close;
        c.code = 1001;
        c.reason = "server shutting down";
        current_ws_->command(std::move(c));
    }
}

void session::close_now() {
    if (closed_) return;
    closed_ = true;
    if (h2_) h2_->close_now();
    if (current_) current_->abort();   // the app sees the client gone
    error_code ec;
    io_.shutdown(asio::socket_base::shutdown_both, ec);
    io_.close(ec);   // ends a watching pump's read
    if (current_) current_->cancel_wakeup();   // and a waiting one's timer
    if (current_ws_) {
        current_ws_->wakeup_timer().cancel();
        current_ws_->reader_timer().cancel();
    }
}

asio::awaitable<bool> session::start_tls() {
    io_.start_tls(std::move(tls_));
    set_phase(phase::handshake);
    bool ok = co_await io_.handshake();
    if (!ok) {
        if (!timed_out_) log::debug("TLS handshake with " + ep_.remote_addr + " failed: " + io_.tls()->error());
        else log::debug("TLS handshake with " + ep_.remote_addr + " timed out (--tls-handshake-timeout)");
        co_return false;
    }
    ep_.scheme = "https";
    ep_.tls = io_.tls()->info();
    co_return true;
}

int session::h2_preface_seen() const {
    std::string_view got(static_cast<const char*>(buf_.data().data()), buf_.size());
    std::size_t n = std::min(got.size(), h2_preface.size());
    if (got.substr(0, n) != h2_preface.substr(0, n)) return 0;
    return n == h2_preface.size() ? 1 : -1;
}

asio::awaitable<void> session::serve_h2(std::string early) {
    set_phase(phase::app);   // the HTTP/2 connection keeps its own deadlines
    speak(metrics::conn_protocol::h2);
    h2_ = std::make_shared<h2_connection>(io_, ep_, ctx_, reg_);
    co_await h2_->run(std::move(early));
    if (h2_->wants_linger() && !closed_) {
        h2_done_ = true;   // the deadline below is the session's own again
        co_await linger();
    }
    close_now();
}

asio::awaitable<void> session::run() {
    auto self = shared_from_this();
    if (tls_ && !co_await start_tls()) {
        close_now();
        co_return;
    }
    if (io_.is_tls() && ctx_.http2 && io_.tls()->alpn() == "h2") {
        co_await serve_h2({});
        co_return;
    }
    set_phase(phase::head);
    for (;;) {
        request_parser parser(ctx_.limits.max_header_bytes, ctx_.limits.max_header_count,
                              ctx_.limits.max_body_bytes);
        if (!co_await read_head(parser)) {
            if (h2_preface_) {
                std::string early(static_cast<const char*>(buf_.data().data()), buf_.size());
                buf_.consume(buf_.size());
                co_await serve_h2(std::move(early));
                co_return;
            }
            break;
        }
        first_request_ = false;
        if (ctx_.request_limit > 0 &&
            ctx_.requests_seen.fetch_add(1, std::memory_order_relaxed) + 1 == ctx_.request_limit)
            ctx_.on_request_limit();
        // A response that went out with keep-alive just before a drain
        // began leaves the connection open: the client may already be
        // sending its next request, which is then served with
        // Connection: close. close_if_idle ends it if nothing comes.
        if (!co_await serve(parser)) break;
        set_phase(buf_.size() > 0 ? phase::head : phase::idle);
    }
    if (linger_ && !closed_) co_await linger();
    close_now();
}

// A response that refuses a head (431, 400) or a body (413, or 400/408
// partway through it; a 503; an app's answer that leaves the body unread
// past drain_limit, or that closes), or an HTTP/2 GOAWAY (see
// h2_connection::wants_linger), goes out while the client may still be
// sending. Closing at once with its bytes unread makes the kernel answer
// them with a reset, which can reach the client before it has read the
// response: it then sees a broken pipe instead of the 413. So, as nginx's
// lingering close does, the sending side is shut (the client reads the
// response and then end of stream) and what still arrives is read and
// dropped, until the client closes or for at most linger_time.
asio::awaitable<void> session::linger() {
    error_code ec;
    io_.shutdown(asio::socket_base::shutdown_send, ec);
    if (ec) co_return;
    set_phase(phase::linger);
    while (!closed_) {
        auto [rec, n] = co_await io_.async_read_some(buf_.prepare(read_chunk), use_tuple);
        if (rec) break;   // end of stream, an error, or linger_time passed (cancelled)
        buf_.commit(n);
        buf_.consume(buf_.size());
    }
}

asio::awaitable<bool> session::read_head(request_parser& p) {
    for (;;) {
        // Empty lines before a request line are skipped (RFC 9112 2.2): some
        // clients send a CRLF after a POST body. The head timeout bounds them.
        while (buf_.size() >= 2 && static_cast<const char*>(buf_.data().data())[0] == '\r' &&
               static_cast<const char*>(buf_.data().data())[1] == '\n')
            buf_.consume(2);
        if (buf_.size() > 0) {
            if (phase_ == phase::idle) set_phase(phase::head);
            // A plain connection's first bytes may be HTTP/2's preface
            // (prior knowledge, h2c): the connection switches.
            if (first_request_ && ctx_.http2 && !io_.is_tls()) {
                int seen = h2_preface_seen();
                if (seen == 1) {
                    h2_preface_ = true;
                    co_return false;
                }
                if (seen == 0) first_request_ = false;
            }
            error_code ec;
            std::size_t n = p.put_head(buf_.data(), ec);   // judges the version early
            if (!ec && p.is_header_done()) {
                auto raw = std::string_view(static_cast<const char*>(buf_.data().data()), n);
                ec = check_raw_head(raw);
                buf_.consume(n);
                if (!ec) co_return true;
            }
            if (ec && ec != http::error::need_more) {
                unsigned status = status_for_parse_error(ec);
                // The client may still be sending: the rest of a head too
                // large (431) or malformed (400), the body a Content-Length
                // announced (413). Closing on those bytes would reset the
                // connection under the answer.
                linger_ = true;
                co_await reject(status);
                co_return false;
            }
            buf_.consume(n);
        }
        if (closed_) co_return false;
        // Between requests, the read waits for epoll without a failing recv
        // first (see check_boundary_eof); within a head, Asio's read.
        bool boundary = buf_.size() == 0;
        begin_boundary_wait(boundary && !io_.is_tls());
        // (Two statements: GCC 12 destroys the awaitable of a co_await on a
        // conditional expression twice.)
        std::tuple<error_code, std::size_t> got;
        if (boundary) got = co_await io_.async_read_drained(buf_.prepare(read_chunk), use_tuple);
        else got = co_await io_.async_read_some(buf_.prepare(read_chunk), use_tuple);
        boundary_wait_ = false;
        auto [ec, n] = got;
        if (ec) {
            if (timed_out_ && phase_ == phase::head && !closed_) co_await reject(408);
            co_return false;
        }
        buf_.commit(n);
    }
}

asio::awaitable<bool> session::read_body_chunk(request_parser& p, std::string& out) {
    for (;;) {
        if (buf_.size() > 0) {
            error_code ec;
            std::size_t n = p.put(buf_.data(), ec);
            buf_.consume(n);
            if (ec && ec != http::error::need_more) {
                body_status_ = status_for_parse_error(ec);
                co_return false;
            }
            auto& sink = p.body_sink();
            if (!sink.empty() || p.is_done()) {
                out.append(sink);
                sink.clear();
                co_return true;
            }
            if (!ec && n > 0) continue;
            // Body bytes the parser cannot take yet are a chunk-size line
            // (with its extensions) or the trailers, which it re-reads from
            // the start as more arrive: bound them, or a client dribbling a
            // huge chunk extension costs quadratic CPU (found by fuzz_request).
            if (buf_.size() > ctx_.limits.max_header_bytes) {
                body_status_ = 400;
                co_return false;
            }
        }
        if (closed_) co_return false;
        rate_.resume(clock::now());
        set_phase(phase::body);
        auto [ec, n] = co_await io_.async_read_some(buf_.prepare(body_chunk), use_tuple);
        rate_.pause(clock::now());
        if (ec) {
            body_status_ = timed_out_ ? 408 : 400;
            co_return false;
        }
        rate_.add(n, clock::now());
        buf_.commit(n);
    }
}

asio::awaitable<void> session::serve_websocket(request_parser& p, handler& target, bool accepts) {
    if (unsigned status = websocket_handshake_status(p.head())) {
        co_await reject(status);
        co_return;
    }
    if (!accepts) {
        co_await reject(400);
        co_return;
    }
    endpoint_info ep = ep_;
    if (ep.trusted_peer) apply_forwarded(p.head(), ctx_.trusted, ep);
    auto ch = std::make_shared<ws_channel>(io_.get_executor(), std::move(p.head()), ep, ctx_.output_hwm);
    if (!target.submit_websocket(ch)) {
        co_await reject(503);
        co_return;
    }
    current_ws_ = ch;
    set_phase(phase::app);   // Beast's websocket timeouts take over
    speak(metrics::conn_protocol::websocket);
    metrics::registry* stats = metrics::current();
    if (stats) stats->websocket_opened();
    co_await net::serve_websocket(io_, ch, ctx_, closed_);
    if (stats) stats->websocket_closed();
    current_ws_.reset();
}

asio::awaitable<void> session::serve_tunnel(std::shared_ptr<app_port> ex, handler& target) {
    upgraded_client client{io_, std::string(static_cast<const char*>(buf_.data().data()), buf_.size())};
    buf_.consume(buf_.size());
    tunnelling_ = true;
    set_phase(phase::app);   // the tunnel keeps its own idle timeout
    speak(metrics::conn_protocol::tunnel);
    co_await target.tunnel(std::move(ex), client);
}

asio::awaitable<bool> session::buffer_body(request_parser& p, std::string& memory, body_file& file) {
    request_head& h = p.head();
    // The app can no longer refuse the body before it is sent: the client is
    // told to go ahead now, as nginx does when it buffers. (--max-body-bytes
    // was already checked against the Content-Length: 413 before any 100.)
    if (h.expect_continue) {
        continue_sent_ = true;
        if (!co_await write("HTTP/1.1 100 Continue\r\n\r\n")) {
            body_status_ = 0;
            co_return false;
        }
    }
    body_buffer b(ctx_.body_buffer_bytes, ctx_.body_temp_dir, h.chunked ? std::nullopt : h.content_length);
    std::string chunk;
    while (!p.is_done()) {
        if (!co_await read_body_chunk(p, chunk)) co_return false;
        // A spill writes a few KiB to the page cache on the io thread, as
        // nginx does with client_body_temp_path.
        if (!b.append(chunk)) {
            log::error("request body of " + h.method + " " + h.target + ": " + b.error());
            body_status_ = 500;
            co_return false;
        }
    }
    if (b.spilled()) file = b.take_file();
    else memory = b.take_memory();
    // The app sees a body of known length, as behind nginx, which sent it on
    // to gunicorn with a Content-Length: a dechunked body gets one too (so
    // apps that need CONTENT_LENGTH, such as Django, see chunked uploads).
    if (h.chunked) {
        h.chunked = false;
        h.content_length = b.size();
        // In the place of the (first) Transfer-Encoding field, so the
        // fields keep the order they were sent in.
        auto is_te = [](const header_field& f) { return f.known == static_cast<int>(http::field::transfer_encoding); };
        header_field cl{"Content-Length", std::to_string(b.size()), static_cast<int>(http::field::content_length)};
        if (auto te = std::find_if(h.headers.begin(), h.headers.end(), is_te); te != h.headers.end()) *te = std::move(cl);
        else h.headers.push_back(std::move(cl));
        std::erase_if(h.headers, is_te);
    }
    h.expect_continue = false;   // answered: the 100 went out and the body is here
    co_return true;
}

asio::awaitable<bool> session::serve(request_parser& p) {
    route r = (ep_.router ? ep_.router : ctx_.router)->resolve(p.head());
    const request_head& h = p.head();
    // A mount that relays upgrades takes the handshake as a request.
    bool tunnel = h.upgrade && r.duties.tunnel_upgrade;
    if (h.is_websocket() && !tunnel) {
        co_await serve_websocket(p, *r.target, r.duties.websocket);
        co_return false;
    }
    bool expect = h.expect_continue;
    continue_sent_ = false;   // per request: each one that expects it gets its own 100
    bool preread = !h.chunked && h.content_length && *h.content_length <= ctx_.preread_bytes &&
                   (!expect || *h.content_length == 0);
    std::string body;
    body_file spooled;
    rate_.start();
    if (!preread && !p.is_done() && r.duties.buffer_body) {
        // The request goes to the app only once its body is here, so a slow
        // upload holds this coroutine, never a pool thread.
        if (!co_await buffer_body(p, body, spooled)) {
            linger_ = true;
            if (body_status_) co_await reject(body_status_);
            co_return false;
        }
    } else if (preread) {
        while (!p.is_done()) {
            if (!co_await read_body_chunk(p, body)) {
                linger_ = true;
                co_await reject(body_status_);
                co_return false;
            }
        }
    }
    auto started = clock::now();
    std::shared_ptr<exchange> ex;
    if (ep_.trusted_peer) {
        // This request's client and scheme, as the trusted proxy reports them.
        endpoint_info ep = ep_;
        apply_forwarded(p.head(), ctx_.trusted, ep);
        ex = std::make_shared<exchange>(reg_.wakes(), std::move(p.head()), ep, ctx_.output_hwm);
    } else {
        ex = std::make_shared<exchange>(reg_.wakes(), std::move(p.head()), ep_, ctx_.output_hwm);
    }
    ex->set_driver(this);
    if (spooled.valid()) ex->preload_body_file(std::move(spooled));
    else if (preread || p.is_done()) ex->preload_body(std::move(body));
    current_ = ex;
    set_phase(phase::app);
    metrics::registry* stats = metrics::current();
    if (stats) stats->request_started(r.mount);
    if (!r.target->submit(ex)) {
        ex->set_driver(nullptr);
        current_.reset();
        linger_ = !p.is_done();   // the body may still be on its way
        if (stats) {
            stats->request_shed(r.mount);
            stats->request_finished(r.mount, 503, 0, 0, 0);
        }
        co_await reject(503);
        co_return false;
    }
    bool keep = false;
    bool ok = co_await pump(p, *ex, r.duties.watch_disconnect, keep);
    ex->set_driver(nullptr);
    current_.reset();
    if (ctx_.access) ctx_.access->record(*ex, started, ex->finished_at());
    if (stats) record_metrics(*stats, r.mount, *ex, started, answer_timeout_ ? 504 : 0);
    if (answer_timeout_) {
        // The app may still run (or be stuck); the connection does not wait
        // for it, so the drain at shutdown does not either.
        linger_ = !p.is_done();
        co_await reject(504);
        co_return false;
    }
    if (tunnel && ex->status() == 101) {
        if (!ok || !keep || !p.is_done()) ex->abort();
        co_await serve_tunnel(std::move(ex), *r.target);
        co_return false;
    }
    // Closing with the body still on its way (the app refused it, answered
    // without reading it, or asked to close): linger, as for a 413.
    if (!ok || !keep) {
        linger_ = !p.is_done();
        co_return false;
    }
    if (!p.is_done() && !co_await drain(p)) {
        linger_ = true;
        co_return false;
    }
    co_return true;
}

asio::awaitable<bool> session::pump(request_parser& p, protocol_port& ex, bool watch, bool& keep) {
    bool body_broken = false;
    // `watch`: apps on the event loop learn of a client that leaves while they wait.
    bool peer_gone = false;
    carry_.reset();
    for (;;) {
        if (answer_timeout_) co_return false;   // see request_timed_out
        io_work w;
        // Nothing more is expected from the client until the response is
        // out, so once the body is in, the wait is a read: it ends with the
        // client's next request (pipelined, or sent after a response that
        // exchange_ready wrote), with its leaving, or when exchange_ready
        // leaves work to the pump (carry_).
        bool watching = watch && !peer_gone && p.is_done() && buf_.size() == 0;
        bool got = false;
        if (carry_) {
            w = std::move(*carry_);
            carry_.reset();
            got = true;
        } else {
            got = ex.take(w);
        }
        if (!got) {
            if (peer_gone || closed_) {
                ex.abort();   // the app sees http.disconnect / OSError
                co_return false;
            }
            if (watching) {
                watch_reading_ = true;
                begin_boundary_wait(!io_.is_tls());
                auto [ec, n] = co_await io_.async_read_drained(buf_.prepare(read_chunk), use_tuple);
                boundary_wait_ = false;
                watch_reading_ = false;
                if (!ec) {
                    buf_.commit(n);   // the next request; it waits for this response
                } else if (ec != asio::error::operation_aborted || peer_eof_) {
                    peer_gone = true;   // unless the response is already complete
                }
            } else {
                auto& t = ex.wakeup_timer();
                t.expires_at(asio::steady_timer::time_point::max());
                co_await t.async_wait(use_tuple);
            }
            continue;
        }
        if (!w.out.empty()) {
            // Before a file, the head goes with MSG_MORE: the kernel holds it
            // for the file's first bytes, so a small file leaves in one
            // segment with its head instead of two.
            if (w.file && !closed_) io_.write_now(w.out, MSG_MORE);
            if (!w.out.empty() && !co_await write(w.out)) {
                ex.abort();
                co_return false;
            }
            ex.output_written();
        }
        if (w.file) {
            bool sent = co_await send_file(w.file->fd.get(), w.file->offset, w.file->count);
            w.file.reset();   // closes it now; any early return closes it too (unique_fd)
            ex.file_sent(sent);
            if (!sent) {
                ex.abort();
                co_return false;
            }
        }
        if (w.want_body) {
            // An interim response must come before the final one (RFC 9110
            // 15.2): once the app has started its response, the 100 is
            // skipped and the body read as it arrives; a client waiting for
            // the 100 sends it after its own timeout (RFC 9110 10.1.1).
            if (ex.head().expect_continue && !continue_sent_ && !ex.output_started()) {
                continue_sent_ = true;
                if (!co_await write("HTTP/1.1 100 Continue\r\n\r\n")) {
                    ex.abort();
                    co_return false;
                }
            }
            std::string chunk;
            if (!body_broken && co_await read_body_chunk(p, chunk)) {
                ex.push_body(chunk, p.is_done());
            } else {
                body_broken = true;
                ex.body_failed(body_status_);
            }
        }
        if (w.done) {
            // A watch that ended in end-of-stream or an error means the
            // client is gone: reading again would wait for an epoll edge that
            // already came (Asio stops trying reads at once after an EOF), so
            // the socket would sit in CLOSE_WAIT until the keep-alive timeout.
            keep = w.keep_alive && !body_broken && !peer_gone;
            co_return true;
        }
        set_phase(phase::app);
    }
}

asio::awaitable<bool> session::send_file(int fd, std::uint64_t offset, std::uint64_t count) {
    if (io_.is_tls()) co_return co_await send_file_tls(fd, offset, count);
    off_t off = static_cast<off_t>(offset);
    while (count > 0) {
        set_phase(phase::write);
        ssize_t n = ::sendfile(io_.native_handle(), fd, &off, std::min<std::uint64_t>(count, 1 << 30));
        if (n > 0) {
            count -= static_cast<std::uint64_t>(n);
            continue;
        }
        if (n == 0) co_return false;   // file shrank under us
        if (errno == EINTR) continue;
        if (errno != EAGAIN) co_return false;
        auto [ec] = co_await io_.socket().async_wait(asio::socket_base::wait_write, use_tuple);
        if (ec) co_return false;
    }
    co_return true;
}

// A file over TLS: with kernel TLS, sendfile through OpenSSL; else read and
// written a piece at a time, so a large file never sits in memory whole.
asio::awaitable<bool> session::send_file_tls(int fd, std::uint64_t offset, std::uint64_t count) {
    tls_io& tls = *io_.tls();
    if (tls.ktls_send()) {
        while (count > 0) {
            set_phase(phase::write);
            std::size_t sent = 0;
            auto r = tls.sendfile(fd, static_cast<off_t>(offset), std::min<std::uint64_t>(count, 1 << 30), sent);
            if (r == tls_io::result::ok) {
                offset += sent;
                count -= sent;
                continue;
            }
            if (r != tls_io::result::want_write && r != tls_io::result::want_read) co_return false;
            auto [ec] = co_await io_.socket().async_wait(
                r == tls_io::result::want_write ? asio::socket_base::wait_write : asio::socket_base::wait_read,
                use_tuple);
            if (ec) co_return false;
        }
        co_return true;
    }
    std::string piece;
    while (count > 0 && !closed_) {
        piece.resize(std::min<std::uint64_t>(count, tls_file_piece));
        ssize_t n = ::pread(fd, piece.data(), piece.size(), static_cast<off_t>(offset));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) co_return false;   // an error, or the file shrank under us
        piece.resize(static_cast<std::size_t>(n));
        if (!co_await write(piece)) co_return false;
        offset += static_cast<std::uint64_t>(n);
        count -= static_cast<std::uint64_t>(n);
    }
    co_return count == 0;
}

asio::awaitable<bool> session::drain(request_parser& p) {
    if (p.head().expect_continue && !continue_sent_) co_return false;
    std::uint64_t discarded = 0;
    std::string chunk;
    while (!p.is_done()) {
        chunk.clear();
        if (!co_await read_body_chunk(p, chunk)) co_return false;
        discarded += chunk.size();
        if (discarded > drain_limit) co_return false;
    }
    co_return true;
}

asio::awaitable<bool> session::write(std::string_view bytes) {
    if (closed_) co_return false;
    // --io-timeout is for a write that makes no progress: every piece the
    // client takes moves the deadline on, so a large response to a slow but
    // steady reader is not cut after io-timeout in all.
    do {
        set_phase(phase::write);
        auto [ec, n] = co_await io_.async_write_some(asio::buffer(bytes.data(), bytes.size()), use_tuple);
        if (ec) co_return false;
        bytes.remove_prefix(n);
    } while (!bytes.empty() && !closed_);
    co_return bytes.empty();
}

asio::awaitable<void> session::reject(unsigned status, bool head_only) {
    std::string extra;
    if (status == 503) extra = "Retry-After: " + ctx_.retry_after + "\r\n";
    if (status == 426) extra = "Sec-WebSocket-Version: 13\r\n";   // RFC 6455 4.4
    std::string r = simple_response(status, ctx_.server_header, true, extra, head_only);
    timed_out_ = false;
    co_await write(r);
}

// ---- registry -------------------------------------------------------------

session_registry::session_registry(asio::any_io_executor ex) : wakes_(ex), timer_(ex) {}

std::list<session*>::iterator session_registry::add(session* s) {
    return sessions_.insert(sessions_.end(), s);
}

void session_registry::remove(std::list<session*>::iterator it) { sessions_.erase(it); }

void session_registry::start() {
    timer_.expires_after(std::chrono::milliseconds(250));
    timer_.async_wait([this](error_code ec) {
        if (ec || stopped_) return;
        tick();
        start();
    });
}

void session_registry::stop() {
    stopped_ = true;
    timer_.cancel();
}

void session_registry::tick() {
    auto now = clock::now();
    for (session* s : sessions_) s->check_deadline(now);
}

void session_registry::close_idle() {
    for (session* s : sessions_) s->close_if_idle();
}

void session_registry::close_all() {
    for (session* s : sessions_) s->close_now();
}

} // namespace trestle::net
