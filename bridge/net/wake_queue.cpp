#include "bridge/net/wake_queue.hpp"

#include "bridge/net/exchange.hpp"

#include <boost/asio/post.hpp>

namespace trestle::net {

void wake_queue::push(std::shared_ptr<exchange> ex) {
    bool post;
    {
        std::lock_guard lock(m_);
        pending_.push_back(std::move(ex));
        post = !posted_;
        posted_ = true;
    }
    if (post) boost::asio::post(io_, [this] { drain(); });
}

void wake_queue::drain() {
    {
        std::lock_guard lock(m_);
        draining_.swap(pending_);
        posted_ = false;
    }
    for (auto& ex : draining_) ex->io_wake();
    draining_.clear();
}

} // namespace trestle::net
