#include "adapters/proxy/conn_pool.hpp"

#include <boost/asio/error.hpp>

#include <cerrno>
#include <sys/socket.h>
#include <unordered_map>

namespace trestle::proxy {

using boost::system::error_code;

conn_pool::~conn_pool() {
    *self_ = nullptr;
    if (sweeper_) sweeper_->cancel();
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

std::optional<conn_pool::socket> conn_pool::take(bool check) {
    auto now = clock::now();
    while (!idle_.empty()) {
        entry e = std::move(idle_.front());
        idle_.pop_front();
        if ((!check && now - e.since < recheck_after) || alive(e.sock)) return std::move(e.sock);
        error_code ec;
        e.sock.close(ec);
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
        idle_.back().sock.close(ec);
        idle_.pop_back();
    }
    auto io = s.get_executor();
    idle_.push_front(entry{std::move(s), clock::now()});
    if (!sweeping_) start_sweep(io);
}

void conn_pool::start_sweep(const boost::asio::any_io_executor& io) {
    if (!sweeper_) sweeper_.emplace(io);
    sweeping_ = true;
    sweeper_->expires_after(recheck_after);
    sweeper_->async_wait([w = std::weak_ptr<conn_pool*>(self_)](error_code ec) {
        auto p = w.lock();
        if (ec || !p || !*p) return;
        (*p)->sweep();
    });
}

void conn_pool::sweep() {
    sweeping_ = false;
    auto now = clock::now();
    error_code ec;
    for (auto it = idle_.begin(); it != idle_.end();) {
        if (now - it->since >= recheck_after && !alive(it->sock)) {
            it->sock.close(ec);
            it = idle_.erase(it);
        } else {
            ++it;
        }
    }
    if (!idle_.empty()) start_sweep(sweeper_->get_executor());
}

} // namespace trestle::proxy
