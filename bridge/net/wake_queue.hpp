#pragma once
// The one way back to a connection. When an app side (a pool thread, the
// event loop, a coroutine on the io thread) produces something the io side
// must act on, its exchange is pushed here; the io thread then hands each
// one to its driver (the connection) on the connection's own executor. A
// burst of wakeups from one loop turn costs one post, not one each.
#include <boost/asio/any_io_executor.hpp>

#include <memory>
#include <mutex>
#include <vector>

namespace trestle::net {

class exchange;

class wake_queue {
public:
    explicit wake_queue(boost::asio::any_io_executor io) : io_(std::move(io)) {}
    wake_queue(const wake_queue&) = delete;
    wake_queue& operator=(const wake_queue&) = delete;

    const boost::asio::any_io_executor& executor() const { return io_; }

    // Any thread. The exchange is told on the io thread (exchange::io_wake,
    // private to the exchange and this queue: neither port has it).
    void push(std::shared_ptr<exchange> ex);

private:
    void drain();   // io thread

    boost::asio::any_io_executor io_;
    std::mutex m_;
    std::vector<std::shared_ptr<exchange>> pending_;
    std::vector<std::shared_ptr<exchange>> draining_;   // io thread only; kept for its capacity
    bool posted_ = false;
};

} // namespace trestle::net
