#pragma once
// A connection's byte stream as the session sees it: the socket itself, or
// TLS over it. Every read and write of a connection goes through here, so a
// session, a WebSocket and a tunnel work the same over both.
//
// It is an Asio AsyncStream (async_read_some, async_write_some), which is
// what Beast's websocket stream and asio::async_write take. Plain
// connections go straight to the socket's operations, with no cost over
// using the socket: the branch is one test of a pointer. TLS runs OpenSSL
// on the socket (tls_io.hpp) and waits with the socket's async_wait when
// OpenSSL needs it readable or writable.
#include "bridge/net/drained_read.hpp"
#include "bridge/net/tls_io.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/role.hpp>
#include <boost/beast/websocket/teardown.hpp>

#include <memory>
#include <string>

namespace trestle::net {

using generic_socket = boost::asio::generic::stream_protocol::socket;
class tls_context;

class transport {
public:
    using executor_type = generic_socket::executor_type;

    explicit transport(generic_socket socket) : socket_(std::move(socket)) {}
    // Makes this a TLS connection; the handshake is still to come.
    void start_tls(std::shared_ptr<tls_context> ctx);
    bool is_tls() const { return tls_ != nullptr; }
    tls_io* tls() const { return tls_.get(); }

    executor_type get_executor() { return socket_.get_executor(); }
    generic_socket& socket() { return socket_; }
    int native_handle() { return socket_.native_handle(); }

    // The TLS handshake, awaited; false on failure (tls()->error() says
    // why). A client that spoke plain HTTP to the TLS port is answered 400.
    boost::asio::awaitable<bool> handshake();

    template <class MutableBuffers, class Token>
    auto async_read_some(const MutableBuffers& bufs, Token&& token) {
        if (!tls_) return socket_.async_read_some(bufs, static_cast<Token&&>(token));
        boost::asio::mutable_buffer b = first_of(bufs);
        return run_tls(token, [this, b](std::size_t& n) { return tls_->read(b.data(), b.size(), n); });
    }
    // The read between requests (drained_read.hpp): on TLS, a plain read,
    // which always tries OpenSSL (and so the socket) first.
    template <class Token>
    auto async_read_drained(boost::asio::mutable_buffer b, Token&& token) {
        if (!tls_) return net::async_read_drained(socket_, b, static_cast<Token&&>(token));
        return run_tls(token, [this, b](std::size_t& n) { return tls_->read(b.data(), b.size(), n); });
    }
    template <class ConstBuffers, class Token>
    auto async_write_some(const ConstBuffers& bufs, Token&& token) {
        if (!tls_) return socket_.async_write_some(bufs, static_cast<Token&&>(token));
        return run_tls(token, [this, bufs](std::size_t& n) {
            boost::asio::const_buffer b = linear(bufs);
            return tls_->write(b.data(), b.size(), n);
        });
    }

    // Writes what it can of `out` without waiting, erasing what went;
    // true once all is written. `flags` (MSG_MORE) apply to a plain socket.
    bool write_now(std::string& out, int flags = 0);
    // Whether bytes wait to be read (in OpenSSL or in the socket).
    std::size_t available();
    // A peek at the socket (plain connections): true when the peer has
    // ended its side or reset the connection.
    bool peer_gone();
    void cancel(boost::system::error_code& ec) { socket_.cancel(ec); }
    // Ends the sending side: TLS's close_notify, then the socket's FIN.
    void shutdown(boost::asio::socket_base::shutdown_type what, boost::system::error_code& ec);
    void close(boost::system::error_code& ec);

private:
    template <class Step>
    struct tls_op;

    template <class Token, class Step>
    auto run_tls(Token& token, Step step) {
        return boost::asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
            tls_op<Step>{this, std::move(step)}, token, socket_);
    }
    template <class MutableBuffers>
    static boost::asio::mutable_buffer first_of(const MutableBuffers& bufs) {
        for (auto it = boost::asio::buffer_sequence_begin(bufs); it != boost::asio::buffer_sequence_end(bufs); ++it)
            if (boost::asio::mutable_buffer b = *it; b.size() > 0) return b;
        return {};
    }
    // A write of several buffers (a WebSocket frame's header and payload)
    // goes out as one TLS record of up to 16 KiB: copied together here.
    template <class ConstBuffers>
    boost::asio::const_buffer linear(const ConstBuffers& bufs) {
        auto it = boost::asio::buffer_sequence_begin(bufs);
        auto end = boost::asio::buffer_sequence_end(bufs);
        while (it != end && boost::asio::const_buffer(*it).size() == 0) ++it;
        if (it == end) return {};
        boost::asio::const_buffer first = *it;
        auto next = it;
        if (++next == end || first.size() >= record_size) return first;
        scratch_.clear();
        for (; it != end && scratch_.size() < record_size; ++it) {
            boost::asio::const_buffer b = *it;
            std::size_t take = std::min(b.size(), record_size - scratch_.size());
            scratch_.append(static_cast<const char*>(b.data()), take);
        }
        return boost::asio::buffer(scratch_);
    }

    static constexpr std::size_t record_size = 16 * 1024;
    generic_socket socket_;
    std::unique_ptr<tls_io> tls_;
    std::string scratch_;
};

// One TLS step (read, write, ...) retried until OpenSSL is done, waiting on
// the socket in between. A step done at once completes through the
// executor, never inside the call that started it.
template <class Step>
struct transport::tls_op {
    transport* t;
    Step step;
    int state = 0;   // 0: first try, 1: after a wait, 2: done, result posted
    boost::system::error_code result_ec{};
    std::size_t result_n = 0;

    template <class Self>
    void operator()(Self& self, boost::system::error_code ec = {}) {
        if (state == 2) return self.complete(result_ec, result_n);
        if (ec) return self.complete(ec, 0);
        std::size_t n = 0;
        switch (step(n)) {
        case tls_io::result::want_read:
            state = 1;
            return t->socket_.async_wait(generic_socket::wait_read, std::move(self));
        case tls_io::result::want_write:
            state = 1;
            return t->socket_.async_wait(generic_socket::wait_write, std::move(self));
        case tls_io::result::ok: result_n = n; break;
        case tls_io::result::closed: result_ec = boost::asio::error::eof; break;
        case tls_io::result::failed: result_ec = boost::asio::error::connection_reset; break;
        }
        if (state == 0) {
            state = 2;
            return boost::asio::post(t->socket_.get_executor(), std::move(self));
        }
        self.complete(result_ec, result_n);
    }
};

// Beast closes a stream it gives up on through this (argument-dependent lookup).
inline void beast_close_socket(transport& t) {
    boost::system::error_code ignored;
    t.close(ignored);
}

// Beast's WebSocket closes its connection through these (argument-dependent
// lookup): TLS's close_notify, then the socket's teardown.
void teardown(boost::beast::role_type role, transport& t, boost::system::error_code& ec);

template <class Handler>
void async_teardown(boost::beast::role_type role, transport& t, Handler&& handler) {
    if (t.tls()) t.tls()->notify_close();
    boost::beast::websocket::async_teardown(role, t.socket(), std::forward<Handler>(handler));
}

} // namespace trestle::net
