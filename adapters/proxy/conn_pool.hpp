#pragma once
// Idle keep-alive connections to one upstream, kept per io thread (a socket
// belongs to its thread's io_context). Each idle connection is watched: if
// the upstream closes it (or sends anything) while it waits, it is dropped
// at once, and a last check when it is taken catches a close in flight.
#include <boost/asio/ip/tcp.hpp>

#include <cstdint>
#include <list>
#include <memory>
#include <optional>

namespace trestle::proxy {

class conn_pool {
public:
    using socket = boost::asio::ip::tcp::socket;

    explicit conn_pool(std::size_t max_idle) : max_idle_(max_idle) {}
    ~conn_pool();
    conn_pool(const conn_pool&) = delete;
    conn_pool& operator=(const conn_pool&) = delete;

    // The most recently used live connection, or none.
    std::optional<socket> take();
    // Keeps `s` for reuse, closing the oldest beyond max_idle.
    void put(socket s);
    std::size_t size() const { return idle_.size(); }

    // The calling io thread's pool for upstream `id`.
    static conn_pool& of(std::uint64_t id, std::size_t max_idle);

private:
    struct entry;
    void watch(const std::shared_ptr<entry>& e);
    void drop(const std::shared_ptr<entry>& e);

    std::list<std::shared_ptr<entry>> idle_;   // most recent first
    std::size_t max_idle_;
};

} // namespace trestle::proxy
