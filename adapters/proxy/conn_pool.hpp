#pragma once
// Idle keep-alive connections to one upstream, kept per io thread (a socket
// belongs to its thread's io_context).
//
// Keeping and taking a connection costs no system call on the hot path: an
// idle connection has no operation pending on it (a wait for it to become
// readable would cost an epoll_ctl each time it is put back, and its cancel a
// handler run). Instead:
// - a connection is checked (a one-byte MSG_PEEK: alive if it would block)
//   when it is taken for a request that must not be sent twice, or when it
//   has been idle for longer than `recheck_after`; a safe request on a
//   connection the upstream closed a moment ago is sent again on a new one
//   by the caller (proxy_call's retry_fresh), as nginx does;
// - a sweep every `recheck_after`, while connections are idle, drops the
//   ones the upstream closed (or sent anything on), so a closed connection
//   does not linger in CLOSE_WAIT for long.
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>

namespace trestle::proxy {

class conn_pool {
public:
    using socket = boost::asio::ip::tcp::socket;
    using clock = std::chrono::steady_clock;
    static constexpr clock::duration recheck_after = std::chrono::seconds(1);

    explicit conn_pool(std::size_t max_idle) : max_idle_(max_idle) {}
    ~conn_pool();
    conn_pool(const conn_pool&) = delete;
    conn_pool& operator=(const conn_pool&) = delete;

    // The most recently used live connection, or none. `check`: make sure
    // it is still open even if it was idle only briefly (the request may
    // not be sent twice).
    std::optional<socket> take(bool check = true);
    // Keeps `s` for reuse, closing the oldest beyond max_idle.
    void put(socket s);
    std::size_t size() const { return idle_.size(); }

    // The calling io thread's pool for upstream `id`.
    static conn_pool& of(std::uint64_t id, std::size_t max_idle);

private:
    struct entry {
        socket sock;
        clock::time_point since;
    };
    void start_sweep(const boost::asio::any_io_executor& io);
    void sweep();

    std::deque<entry> idle_;   // most recent first
    std::size_t max_idle_;
    std::optional<boost::asio::steady_timer> sweeper_;
    bool sweeping_ = false;
    // Voided on destruction: a sweep already queued then does nothing.
    std::shared_ptr<conn_pool*> self_ = std::make_shared<conn_pool*>(this);
};

} // namespace trestle::proxy
