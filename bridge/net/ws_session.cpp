#include "bridge/net/ws_session.hpp"

#include "bridge/net/h2_stream_io.hpp"
#include "bridge/net/http_util.hpp"
#include "bridge/net/server_context.hpp"
#include "bridge/net/ws_close_filter.hpp"
#include "bridge/observability/metrics.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/websocket/stream.hpp>

#include <cctype>

#if defined(__GNUC__) && !defined(__clang__)
// GCC 12 inlines Asio's frame allocation (operator new, behind Asio's
// per-thread frame cache) into serve_websocket and then warns that the
// frame's own operator delete does not match it; that delete hands the frame
// back through the same cache. A false positive since Asio's handler memory
// comes from operator new (BOOST_ASIO_DISABLE_STD_ALIGNED_ALLOC).
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace trestle::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using boost::system::error_code;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

namespace {

// Lowest: the connection's transport, or an HTTP/2 stream.
template <class Lowest>
struct shared_state {
    explicit shared_state(Lowest& s) : ws(s) {}
    websocket::stream<basic_close_code_filter<Lowest>> ws;
    bool reader_done = false;
    bool stopping = false;
};

asio::awaitable<void> wait_on(asio::steady_timer& t) {
    t.expires_at(asio::steady_timer::time_point::max());
    co_await t.async_wait(use_tuple);
}

// The close code the app sees in websocket.disconnect.
template <class WsStream>
std::uint16_t close_code(WsStream& ws, const error_code& ec) {
    if (ec == websocket::error::closed) {
        auto code = ws.reason().code;
        return code ? static_cast<std::uint16_t>(code) : 1005;
    }
    // A close the app started: Beast's close operation reads the peer's
    // answer and the pending read ends as cancelled, but the answer's code is
    // there (reason() holds only a close frame the peer sent).
    if (ec == asio::error::operation_aborted && ws.reason().code != websocket::close_code::none)
        return static_cast<std::uint16_t>(ws.reason().code);
    if (ec == websocket::error::message_too_big) return 1009;
    // The peer broke the protocol (a bad close code, a bad frame): Beast
    // has failed the connection with 1002, and the app hears the same.
    if (ec == websocket::condition::protocol_violation) return 1002;
    return 1006;
}

template <class Lowest>
asio::awaitable<void> read_frames(std::shared_ptr<shared_state<Lowest>> st, std::shared_ptr<ws_channel> ch) {
    for (;;) {
        beast::flat_buffer buf;
        auto [ec, n] = co_await st->ws.async_read(buf, use_tuple);
        if (ec) {
            // Beast's idle timeout: no frame and no answer to its ping.
            if (ec == beast::error::timeout)
                if (auto* stats = metrics::current()) stats->timed_out(metrics::timeout_kind::websocket);
            ch->peer_closed(close_code(st->ws, ec));
            break;
        }
        ws_frame f{st->ws.got_text(), beast::buffers_to_string(buf.data())};
        if (!ch->push_frame(std::move(f))) {
            // The app is behind: stop reading so TCP pushes back on the peer.
            while (!st->stopping && !ch->reader_may_continue()) co_await wait_on(ch->reader_timer());
            if (st->stopping) {
                ch->peer_closed(1006);
                break;
            }
        }
    }
    st->reader_done = true;
    ch->wakeup_timer().cancel();
}

http::request<http::empty_body> to_request(const request_head& h) {
    http::request<http::empty_body> req;
    req.method_string(h.method);
    req.target(h.target);
    req.version(static_cast<int>(h.version));
    for (auto& f : h.headers) req.insert(f.name, f.value);
    return req;
}

// RFC 4648 base64 of exactly 16 bytes: 22 characters of the alphabet, "==".
bool valid_key(std::string_view k) {
    while (!k.empty() && (k.front() == ' ' || k.front() == '\t')) k.remove_prefix(1);
    while (!k.empty() && (k.back() == ' ' || k.back() == '\t')) k.remove_suffix(1);
    if (k.size() != 24 || k.substr(22) != "==") return false;
    for (char c : k.substr(0, 22))
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '/') return false;
    return true;
}

// The app's first command: accept, deny or close (= 403); nothing when the
// connection went first. Commands queued after it stay in `rest`.
asio::awaitable<std::optional<ws_command>> first_command(ws_channel& ch, std::deque<ws_command>& rest,
                                                         const bool& closed) {
    while (!ch.take(rest)) {
        co_await wait_on(ch.wakeup_timer());
        if (closed) {
            ch.peer_closed(1006);
            co_return std::nullopt;
        }
    }
    ws_command first = std::move(rest.front());
    rest.pop_front();
    co_return first;
}

// The handshake's answer as Beast writes it (HTTP/1.1 101), then frames both
// ways until either side closes. `accepted` runs once the handshake is done.
template <class Lowest, class Accepted>
asio::awaitable<void> run_frames(Lowest& socket, std::shared_ptr<ws_channel> ch, const server_context& ctx,
                                 const bool& closed, const ws_command& first, std::deque<ws_command> cmds,
                                 http::request<http::empty_body> req, Accepted accepted) {
    auto st = std::make_shared<shared_state<Lowest>>(socket);
    auto& ws = st->ws;
    websocket::stream_base::timeout t{};
    t.handshake_timeout = std::chrono::seconds(30);
    t.idle_timeout = ctx.ws_idle_timeout;
    t.keep_alive_pings = true;   // a ping at half the idle timeout keeps a live peer answering
    ws.set_option(t);
    ws.read_message_max(ctx.ws_max_size);
    ws.auto_fragment(false);
    std::string server = ctx.server_header;
    ws.set_option(websocket::stream_base::decorator(
        [server, sub = first.subprotocol, extra = first.headers](websocket::response_type& res) {
            if (!server.empty()) res.set(http::field::server, server);
            if (!sub.empty()) res.set(http::field::sec_websocket_protocol, sub);
            for (auto& [n, v] : extra) res.insert(n, v);
        }));
    auto [ec] = co_await ws.async_accept(req, use_tuple);
    accepted();
    if (ec) {
        ch->peer_closed(1006);
        co_return;
    }
    asio::co_spawn(socket.get_executor(), read_frames(st, ch), asio::detached);

    bool closing = false;
    for (;;) {
        while (!cmds.empty() && !st->reader_done) {
            ws_command c = std::move(cmds.front());
            cmds.pop_front();
            if (c.kind == ws_command::send && !closing) {
                ws.text(c.frame.text);
                auto [wec, n] = co_await ws.async_write(asio::buffer(c.frame.data), use_tuple);
                ch->sent(c.frame.data.size());
                if (wec) break;
            } else if (c.kind == ws_command::close && !closing) {
                closing = true;
                // ws_call checks both; should a bad one get here, Beast's
                // close_reason would throw out of the session instead.
                if (!sendable_close_code(c.code) || c.reason.size() > max_close_reason) {
                    c.code = 1011;
                    c.reason.clear();
                }
                websocket::close_reason reason(static_cast<websocket::close_code>(c.code), c.reason);
                co_await ws.async_close(reason, use_tuple);
            } else if (c.kind == ws_command::send) {
                ch->sent(c.frame.data.size());
            }
        }
        if (st->reader_done || closed) break;
        if (!ch->take(cmds)) co_await wait_on(ch->wakeup_timer());
    }
    // Let the reader see the end (the close handshake or the closed socket).
    while (!st->reader_done) {
        if (!closing || closed) {
            st->stopping = true;
            ch->reader_timer().cancel();
            error_code ignored;
            socket.close(ignored);
        }
        co_await wait_on(ch->wakeup_timer());
    }
}

} // namespace

std::string websocket_denial(const ws_command& c, const server_context& ctx) {
    if (c.kind != ws_command::deny || (c.body.empty() && c.headers.empty()))
        return simple_response(c.kind == ws_command::deny ? c.status : 403, ctx.server_header, true);
    std::string r = "HTTP/1.1 " + std::to_string(c.status) + " " + std::string(reason_phrase(c.status)) + "\r\n";
    for (auto& [n, v] : c.headers) r += n + ": " + v + "\r\n";
    if (!ctx.server_header.empty()) r += "Server: " + ctx.server_header + "\r\n";
    r += "Date: " + std::string(http_date()) + "\r\nContent-Length: " + std::to_string(c.body.size()) +
         "\r\nConnection: close\r\n\r\n" + c.body;
    return r;
}

unsigned websocket_handshake_status(const request_head& head) {
    const std::string* key = nullptr;
    const std::string* version = nullptr;
    int keys = 0, versions = 0;
    for (auto& f : head.headers) {
        if (beast::iequals(f.name, "sec-websocket-key")) key = &f.value, ++keys;
        else if (beast::iequals(f.name, "sec-websocket-version")) version = &f.value, ++versions;
    }
    if (keys != 1 || !valid_key(*key)) return 400;
    if (versions != 1) return versions ? 400 : 426;
    std::string_view v = *version;
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    return v == "13" ? 0 : 426;
}

unsigned h2_websocket_status(const request_head& head) {
    // RFC 8441 5: no key, no Upgrade or Connection; the version as in RFC 6455.
    const std::string* version = nullptr;
    int versions = 0;
    for (auto& f : head.headers)
        if (beast::iequals(f.name, "sec-websocket-version")) version = &f.value, ++versions;
    if (versions != 1) return versions ? 400 : 426;
    std::string_view v = *version;
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    return v == "13" ? 0 : 426;
}

asio::awaitable<void> serve_websocket(transport& socket, std::shared_ptr<ws_channel> ch, const server_context& ctx,
                                      const bool& closed) {
    std::deque<ws_command> cmds;
    std::optional<ws_command> first = co_await first_command(*ch, cmds, closed);
    if (!first) co_return;
    if (first->kind != ws_command::accept) {
        std::string r = websocket_denial(*first, ctx);
        co_await asio::async_write(socket, asio::buffer(r), use_tuple);
        ch->peer_closed(1006);
        co_return;
    }
    co_await run_frames(socket, ch, ctx, closed, *first, std::move(cmds), to_request(ch->head()), [] {});
}

asio::awaitable<void> serve_websocket(h2_stream_io& stream, std::shared_ptr<ws_channel> ch,
                                      const server_context& ctx) {
    std::deque<ws_command> cmds;
    std::optional<ws_command> first = co_await first_command(*ch, cmds, stream.gone());
    if (!first) co_return;
    stream.answer(*first);   // HEADERS: 200, or the denial and its body
    if (first->kind != ws_command::accept) {
        ch->peer_closed(1006);
        co_return;
    }
    // Beast's websocket stream starts only from an HTTP/1.1 handshake: it is
    // given one that says what the extended CONNECT said, and what it
    // answers is dropped (the 200 has gone out in HEADERS).
    http::request<http::empty_body> req;
    req.method(http::verb::get);
    req.target(ch->head().target);
    req.version(11);
    const std::string* host = ch->head().find("host");
    req.set(http::field::host, host ? *host : std::string("localhost"));
    req.set(http::field::upgrade, "websocket");
    req.set(http::field::connection, "Upgrade");
    req.set(http::field::sec_websocket_key, "dGhlIHNhbXBsZSBub25jZQ==");
    req.set(http::field::sec_websocket_version, "13");
    stream.discard_writes(true);
    co_await run_frames(stream, ch, ctx, stream.gone(), *first, std::move(cmds), std::move(req),
                        [&stream] { stream.discard_writes(false); });
    stream.end_output();   // END_STREAM, if Beast's close has not sent it
}

} // namespace trestle::net
