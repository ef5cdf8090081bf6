#include "bridge/net/transport.hpp"

#include "bridge/net/tls_context.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/websocket/teardown.hpp>

#include <cerrno>
#include <sys/socket.h>

namespace trestle::net {

namespace asio = boost::asio;
using boost::system::error_code;

void transport::start_tls(std::shared_ptr<tls_context> ctx) {
    // OpenSSL calls recv and send itself: they must never block.
    error_code ec;
    socket_.native_non_blocking(true, ec);
    tls_ = std::make_unique<tls_io>(std::move(ctx), socket_.native_handle());
}

asio::awaitable<bool> transport::handshake() {
    constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
    for (;;) {
        auto r = tls_->handshake();
        if (r == tls_io::result::ok) co_return true;
        if (r == tls_io::result::want_read || r == tls_io::result::want_write) {
            auto [ec] = co_await socket_.async_wait(r == tls_io::result::want_read ? generic_socket::wait_read
                                                                                 : generic_socket::wait_write,
                                                    use_tuple);
            if (ec) co_return false;
            continue;
        }
        if (tls_->plain_http()) {
            // As nginx does: the client learns what went wrong, in the
            // protocol it spoke, rather than from a reset.
            static constexpr char answer[] =
                "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 46\r\nConnection: close\r\n\r\n"
                "This port speaks HTTPS: use an https:// URL.\r\n";
            ::send(socket_.native_handle(), answer, sizeof answer - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
        }
        co_return false;
    }
}

bool transport::write_now(std::string& out, int flags) {
    if (tls_) {
        while (!out.empty()) {
            std::size_t n = 0;
            if (tls_->write(out.data(), out.size(), n) != tls_io::result::ok) return false;
            out.erase(0, n);
        }
        return true;
    }
    while (!out.empty()) {
        ssize_t n = ::send(socket_.native_handle(), out.data(), out.size(), MSG_DONTWAIT | MSG_NOSIGNAL | flags);
        if (n > 0) {
            out.erase(0, static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        return false;   // EAGAIN or an error: the caller's write waits, or sees the same error
    }
    return true;
}

std::size_t transport::available() {
    if (tls_ && tls_->pending()) return 1;
    error_code ec;
    return socket_.available(ec);
}

bool transport::peer_gone() {
    char c;
    ssize_t n = ::recv(socket_.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return !(n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)));
}

void transport::shutdown(asio::socket_base::shutdown_type what, error_code& ec) {
    if (tls_ && what != asio::socket_base::shutdown_receive) tls_->notify_close();
    socket_.shutdown(what, ec);
}

void transport::close(error_code& ec) {
    if (tls_) {
        tls_->notify_close();
        tls_->detach();
    }
    socket_.close(ec);
}

void teardown(boost::beast::role_type role, transport& t, error_code& ec) {
    if (t.tls()) t.tls()->notify_close();
    boost::beast::websocket::teardown(role, t.socket(), ec);
}

} // namespace trestle::net
