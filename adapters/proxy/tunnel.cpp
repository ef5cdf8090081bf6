#include "adapters/proxy/tunnel.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <unordered_map>
#include <vector>

namespace trestle::proxy {

namespace asio = boost::asio;
using boost::system::error_code;
using namespace asio::experimental::awaitable_operators;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

namespace {

constexpr std::size_t pipe_buffer = 32 * 1024;

std::unordered_map<const net::app_port*, upgraded_upstream>& stash_map() {
    thread_local std::unordered_map<const net::app_port*, upgraded_upstream> map;
    return map;
}

struct splice_state {
    net::transport& client;
    asio::ip::tcp::socket& upstream;
    asio::steady_timer idle_timer;
    std::chrono::milliseconds idle;
    std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();
    int open = 2;   // directions still moving bytes

    // Ends both directions: their pending operations fail.
    void fail() {
        error_code ec;
        upstream.close(ec);
        client.cancel(ec);
        idle_timer.cancel();
    }
    void direction_done() {
        if (--open == 0) idle_timer.cancel();
    }
};

template <class From, class To>
asio::awaitable<void> pipe(From& from, To& to, std::string early, splice_state& st) {
    if (!early.empty()) {
        auto [ec, n] = co_await asio::async_write(to, asio::buffer(early), use_tuple);
        if (ec) {
            st.fail();
            st.direction_done();
            co_return;
        }
    }
    std::vector<char> buf(pipe_buffer);
    for (;;) {
        auto [rec, n] = co_await from.async_read_some(asio::buffer(buf), use_tuple);
        if (rec == asio::error::eof) {
            error_code ec;
            to.shutdown(asio::socket_base::shutdown_send, ec);   // pass the half-close on
            break;
        }
        if (rec) {
            st.fail();
            break;
        }
        st.last = std::chrono::steady_clock::now();
        auto [wec, w] = co_await asio::async_write(to, asio::buffer(buf.data(), n), use_tuple);
        if (wec) {
            st.fail();
            break;
        }
    }
    st.direction_done();
}

asio::awaitable<void> watch_idle(splice_state& st) {
    while (st.open > 0) {
        st.idle_timer.expires_at(st.last + st.idle);
        auto [ec] = co_await st.idle_timer.async_wait(use_tuple);
        if (st.open == 0) break;
        if (!ec && std::chrono::steady_clock::now() >= st.last + st.idle) {
            st.fail();
            break;
        }
        if (ec) break;   // cancelled: a failure ended everything
    }
}

} // namespace

void stash_upgrade(const net::app_port* ex, upgraded_upstream up) {
    stash_map().insert_or_assign(ex, std::move(up));
}

std::optional<upgraded_upstream> claim_upgrade(const net::app_port* ex) {
    auto& map = stash_map();
    auto it = map.find(ex);
    if (it == map.end()) return std::nullopt;
    std::optional<upgraded_upstream> up(std::move(it->second));
    map.erase(it);
    return up;
}

asio::awaitable<void> splice(net::upgraded_client& client, upgraded_upstream up, std::chrono::milliseconds idle) {
    splice_state st{client.stream, up.socket, asio::steady_timer(up.socket.get_executor()), idle};
    co_await (pipe(client.stream, up.socket, std::move(client.early), st) &&
              pipe(up.socket, client.stream, std::move(up.early), st) && watch_idle(st));
    error_code ec;
    up.socket.close(ec);
}

} // namespace trestle::proxy
