#pragma once
// One HTTP/2 connection (RFC 9113), on libnghttp2: ALPN "h2" over TLS, or
// cleartext with prior knowledge (h2c). Every stream is an exchange, as an
// HTTP/1.1 request is: WSGI on the pool, ASGI on the loop, static files and
// proxies on the io thread, with the same limits, timeouts and access log.
//
// Flow control is the backpressure. A request body's window opens only as
// its app reads it; a response waits on the peer's window, and its app
// pauses at --output-hwm as over HTTP/1.1. Frames are read by one
// coroutine and written by another, so a stream's output never waits
// behind a read; the writer first tries to send synchronously.
#include "bridge/core/handler.hpp"
#include "bridge/net/body_buffer.hpp"
#include "bridge/net/exchange.hpp"
#include "bridge/net/h1_response_decoder.hpp"
#include "bridge/net/h2_stream_io.hpp"
#include "bridge/net/protocol_port.hpp"
#include "bridge/net/request.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

typedef struct nghttp2_session nghttp2_session;

namespace trestle::net {

struct server_context;
class session_registry;
class transport;

// The 24 bytes an HTTP/2 client sends first (RFC 9113 3.4).
inline constexpr std::string_view h2_preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

class h2_connection final : public std::enable_shared_from_this<h2_connection>,
                            private exchange_driver,
                            private h2_stream_link {
public:
    using clock = std::chrono::steady_clock;

    h2_connection(transport& io, const endpoint_info& ep, server_context& ctx, session_registry& reg);
    ~h2_connection();

    // Serves until the connection ends. `early`: bytes already read from
    // the client (the preface and what followed it, for h2c).
    boost::asio::awaitable<void> run(std::string early);

    // The registry's watchdog, on the same io thread.
    void check_deadline(clock::time_point now);
    // Graceful stop: GOAWAY with the last stream taken; open streams finish.
    void close_if_idle();
    void close_now();
    // After run(): the GOAWAY went out whole, the client's side is still
    // open, and it may still be sending (an error's GOAWAY, or its bytes
    // already waiting). The session should linger (session::linger).
    bool wants_linger() const { return linger_; }
    // GOAWAY with the last stream taken: no new streams, open ones finish.
    void goaway();

    struct stream;
    struct callbacks;

private:
    void exchange_ready(protocol_port& ex) override;
    // A WebSocket over a stream (RFC 8441), through h2_stream_io.
    void start_websocket(stream& st);
    void stream_consumed(std::int32_t id, std::size_t n) override;
    void stream_output(std::int32_t id) override;
    void stream_answer(std::int32_t id, const ws_command& first) override;
    void stream_abort(std::int32_t id) override;
    stream* find(std::int32_t id);

    // After the request head is complete.
    void start_request(stream& st);
    void submit_exchange(stream& st);
    // The server answers the stream itself (431, 413, 503, 504, ...).
    void answer(stream& st, unsigned status);
    // Moves what the app produced onto the stream.
    void drain(stream& st);
    void give_body(stream& st);
    void body_complete(stream& st);
    void submit_head(stream& st);
    void resume(stream& st);
    void reset(stream& st, std::uint32_t code);
    void stream_closed(std::int32_t id, std::uint32_t code);
    // A flood of control frames, or another abuse: GOAWAY and close.
    void calm_down(const char* why);
    bool spend_control_token();

    // Frames out: from nghttp2 to the socket.
    void flush();
    bool fill_output();
    void kick_writer();
    void stop_reading();
    boost::asio::awaitable<void> writer();
    bool finished() const;

    transport& io_;
    endpoint_info ep_;
    server_context& ctx_;
    session_registry& reg_;
    nghttp2_session* session_ = nullptr;
    std::map<std::int32_t, std::unique_ptr<stream>> streams_;
    std::unordered_map<const protocol_port*, std::int32_t> by_exchange_;
    // Exchanges whose stream is gone while their app may still run (a
    // reset stream): they count against the stream limit until it ends, so
    // a client that resets streams cannot pile up work (rapid reset).
    std::vector<std::shared_ptr<exchange>> orphans_;
    std::vector<std::int32_t> to_drain_;   // streams with work found inside nghttp2's callbacks
    int in_nghttp2_ = 0;                   // depth of calls into nghttp2 (no flush from inside)
    std::string out_;                      // frames not yet written
    std::optional<boost::asio::steady_timer> kick_;
    std::optional<boost::asio::steady_timer> writer_exit_;   // run() waits on it for the last frames
    boost::asio::cancellation_signal read_cancel_;
    bool writer_waiting_ = false;
    bool writer_running_ = false;
    bool reading_done_ = false;
    bool closed_ = false;
    bool goaway_sent_ = false;
    bool error_goaway_ = false;   // the GOAWAY sent carries an error code
    bool peer_closed_ = false;    // the client's side ended (end of stream, reset)
    bool linger_ = false;         // see wants_linger
    clock::time_point idle_since_;
    clock::time_point write_progress_;
    // The control-frame budget: a bucket refilled over time.
    double control_tokens_;
    clock::time_point control_refill_;
};

} // namespace trestle::net
