#include "adapters/proxy/conn_pool.hpp"

#include <boost/asio/error.hpp>

#include <cerrno>
#include <sys/socket.h>
#include <unordered_map>

namespace trestle::proxy {

using boost::system::error_code;

struct conn_pool::entry {
    explicit entry(socket s) : sock(std::move(s)) {}
    socket sock;
    bool idle = true;   // false once taken or dropped: a late watch result is ignored
};

conn_pool::~conn_pool() {
    for (auto& e : idle_) e->idle = false;
}

conn_pool& conn_pool::of(std::uint64_t id, std::size_t max_idle) {
    // Destroyed when the io thread ends, before its io_context.
    thread_local std::unordered_map<std::uint64_t, std::unique_ptr<conn_pool>> pools;
    auto& p = pools[id];
    if (!p) p = std::make_unique<conn_pool>(max_idle);
    return *p;
}

namespace {
// An idle connection is alive if reading would block: no end of stream, no
// error, and no unexpected bytes.
bool alive(conn_pool::socket& s) {
    char c;
    ssize_t n = ::recv(s.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}
} // namespace

std::optional<conn_pool::socket> conn_pool::take() {
    while (!idle_.empty()) {
        std::shared_ptr<entry> e = idle_.front();
        idle_.pop_front();
        e->idle = false;
        error_code ec;
        e->sock.cancel(ec);   // the watch ends with operation_aborted
        if (alive(e->sock)) return std::move(e->sock);
        e->sock.close(ec);
    }
    return std::nullopt;
}

void conn_pool::put(socket s) {
    error_code ec;
    if (max_idle_ == 0) {
        s.close(ec);
        return;
    }
    while (idle_.size() >= max_idle_) {
        auto& oldest = idle_.back();
        oldest->idle = false;
        oldest->sock.close(ec);
        idle_.pop_back();
    }
    auto e = std::make_shared<entry>(std::move(s));
    idle_.push_front(e);
    watch(e);
}

void conn_pool::watch(const std::shared_ptr<entry>& e) {
    // The pool outlives every handler run on its thread (see of()).
    e->sock.async_wait(socket::wait_read, [this, w = std::weak_ptr<entry>(e)](error_code ec) {
        auto e = w.lock();
        if (!e || !e->idle || ec == boost::asio::error::operation_aborted) return;
        drop(e);
    });
}

void conn_pool::drop(const std::shared_ptr<entry>& e) {
    e->idle = false;
    error_code ec;
    e->sock.close(ec);
    idle_.remove(e);
}

} // namespace trestle::proxy
