#pragma once
// One HTTP/1.1 connection: a coroutine that reads a request head, hands the
// request to the app through an exchange, pumps body and output between the
// socket and the exchange, and loops for keep-alive. Requests on one
// connection are answered strictly in order, so pipelining is safe.
#include "bridge/net/body_buffer.hpp"
#include "bridge/net/protocol_port.hpp"
#include "bridge/net/request.hpp"
#include "bridge/net/transport.hpp"
#include "bridge/net/wake_queue.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>

namespace trestle { class handler; }

namespace trestle::metrics {
enum class conn_protocol : std::uint8_t;
enum class timeout_kind : std::uint8_t;
}

namespace trestle::net {

struct server_context;
class app_port;
class ws_channel;
class request_parser;
class session_registry;
class tls_context;
class h2_connection;
using clock = std::chrono::steady_clock;

// On graceful stop, how long a connection must have been idle before it is
// closed (see session::close_if_idle).
constexpr std::chrono::milliseconds drain_idle_grace{200};

// A connection handed to handler::tunnel(): its stream (still the
// connection's, which closes it afterwards) and the bytes the client sent
// past the request.
struct upgraded_client {
    transport& stream;
    std::string early;
};

class session final : public std::enable_shared_from_this<session>, private exchange_driver {
public:
    // `tls`: the connection starts with a TLS handshake (null: plain).
    session(generic_socket socket, endpoint_info ep, std::shared_ptr<tls_context> tls, server_context& ctx,
            session_registry& reg);
    ~session();

    boost::asio::awaitable<void> run();

    // Called by the registry's watchdog on the same io thread.
    void check_deadline(clock::time_point now);
    // Closes the connection now if it sits between requests.
    void close_if_idle();
    void close_now();

private:
    enum class phase { handshake, idle, head, body, app, write, linger };

    boost::asio::awaitable<bool> read_head(request_parser& p);
    boost::asio::awaitable<bool> read_body_chunk(request_parser& p, std::string& out);
    boost::asio::awaitable<bool> buffer_body(request_parser& p, std::string& memory, body_file& file);
    boost::asio::awaitable<bool> serve(request_parser& p);
    boost::asio::awaitable<void> serve_websocket(request_parser& p, handler& target, bool accepts);
    boost::asio::awaitable<void> serve_tunnel(std::shared_ptr<app_port> ex, handler& target);
    boost::asio::awaitable<bool> pump(request_parser& p, protocol_port& ex, bool watch, bool& keep);
    boost::asio::awaitable<bool> send_file(int fd, std::uint64_t offset, std::uint64_t count);
    boost::asio::awaitable<bool> send_file_tls(int fd, std::uint64_t offset, std::uint64_t count);
    boost::asio::awaitable<bool> start_tls();
    // The connection speaks HTTP/2 from here on (ALPN, or the preface).
    boost::asio::awaitable<void> serve_h2(std::string early);
    // Whether buf_ holds the start of the HTTP/2 preface (h2c with prior
    // knowledge): 1 yes, 0 no, -1 too few bytes to tell.
    int h2_preface_seen() const;
    boost::asio::awaitable<bool> drain(request_parser& p);
    boost::asio::awaitable<bool> write(std::string_view bytes);
    boost::asio::awaitable<void> reject(unsigned status, bool head_only = false);
    boost::asio::awaitable<void> linger();
    void set_phase(phase ph);
    // Ends the pump's wait on a read of the socket (see pump).
    void interrupt_watch();
    void begin_boundary_wait(bool drained);
    void check_boundary_eof();
    // The app side produced something (see exchange_driver).
    void exchange_ready(protocol_port& ex) override;
    // --timeout: the app has held the current request too long.
    void request_timed_out();

    transport io_;
    std::shared_ptr<h2_connection> h2_;   // set once the connection speaks HTTP/2
    bool first_request_ = true;
    bool h2_preface_ = false;
    bool h2_done_ = false;   // the HTTP/2 connection has ended; the session lingers
    std::shared_ptr<tls_context> tls_;   // until the handshake
    endpoint_info ep_;
    server_context& ctx_;
    session_registry& reg_;
    std::list<session*>::iterator reg_pos_;
    boost::beast::flat_buffer buf_;
    phase phase_ = phase::idle;
    clock::time_point deadline_ = clock::time_point::max();
    clock::time_point idle_since_{};   // when the connection last went idle
    bool timed_out_ = false;
    // In the metrics: what the connection speaks, and whether it is counted idle.
    std::optional<metrics::conn_protocol> proto_;
    bool counted_idle_ = false;
    void speak(std::optional<metrics::conn_protocol> p);
    void count_timeout(metrics::timeout_kind k);
    bool closed_ = false;
    bool continue_sent_ = false;
    unsigned body_status_ = 400;   // 0: the client is gone, no answer
    body_rate rate_;               // --min-body-rate, per request body
    std::shared_ptr<protocol_port> current_;   // the exchange serve() made
    std::shared_ptr<ws_channel> current_ws_;
    bool ws_closing_ = false;
    bool tunnelling_ = false;
    bool linger_ = false;          // closing after refusing a body the client may still be sending
    bool watch_reading_ = false;   // pump waits on a read of the socket (see pump)
    bool boundary_wait_ = false;     // a drained read between requests is pending
    bool boundary_checked_ = false;  // ...and check_boundary_eof has looked once
    bool peer_eof_ = false;          // it found the client's end of stream
    // Work that exchange_ready took from the exchange while the pump waited
    // on the socket, and left for the pump: the rest of a write, a file, a
    // wish for body, or the completion of a response already written.
    std::optional<io_work> carry_;
    bool answer_timeout_ = false;  // the request ran past --timeout: pump returns, serve answers 504
};

// The sessions of one io_context, and a coarse watchdog that enforces their
// deadlines: one timer per io thread rather than one per socket operation.
class session_registry {
public:
    explicit session_registry(boost::asio::any_io_executor ex);
    std::list<session*>::iterator add(session* s);
    void remove(std::list<session*>::iterator it);
    void start();
    void stop();
    void close_idle();
    void close_all();
    std::size_t size() const { return sessions_.size(); }
    wake_queue& wakes() { return wakes_; }

private:
    void tick();
    std::list<session*> sessions_;
    wake_queue wakes_;
    boost::asio::steady_timer timer_;
    bool stopped_ = false;
};

} // namespace trestle::net
