#include "adapters/proxy/deadline_queue.hpp"

#include <boost/asio/execution/context.hpp>
#include <boost/asio/query.hpp>

namespace trestle::proxy {

void deadline_queue::entry::cancel() {
    if (queue_) queue_->unlink(*this);
}

boost::asio::execution_context::id deadline_queue::id;

deadline_queue::deadline_queue(boost::asio::execution_context& ctx) : service(ctx) {}

deadline_queue::~deadline_queue() { shutdown(); }

void deadline_queue::shutdown() {
    // Entries that outlive the context's io thread are only unlinked. The
    // timer goes now, while every service of the context still exists: the
    // timer's own service may be destroyed before this one.
    while (head_) unlink(*head_);
    timer_.reset();
    timer_at_ = clock::time_point::max();
}

deadline_queue& deadline_queue::of(const boost::asio::any_io_executor& ex) {
    return boost::asio::use_service<deadline_queue>(boost::asio::query(ex, boost::asio::execution::context));
}

void deadline_queue::unlink(entry& e) {
    (e.prev_ ? e.prev_->next_ : head_) = e.next_;
    (e.next_ ? e.next_->prev_ : tail_) = e.prev_;
    e.prev_ = e.next_ = nullptr;
    e.queue_ = nullptr;
}

void deadline_queue::schedule(entry& e, clock::time_point at, const boost::asio::any_io_executor& ex) {
    if (!timer_) timer_.emplace(ex);
    if (e.queue_) unlink(e);
    e.at_ = at;
    e.queue_ = this;
    // From the tail back to the first entry not later than this one: one
    // step for the usual "now + the same timeout".
    entry* after = tail_;
    while (after && after->at_ > at) after = after->prev_;
    e.prev_ = after;
    e.next_ = after ? after->next_ : head_;
    (e.prev_ ? e.prev_->next_ : head_) = &e;
    (e.next_ ? e.next_->prev_ : tail_) = &e;
    if (at < timer_at_) arm(at);
}

std::size_t deadline_queue::expire(clock::time_point now) {
    std::size_t n = 0;
    while (head_ && head_->at_ <= now) {
        entry& e = *head_;
        unlink(e);
        ++n;
        e.expired();   // may schedule e again, or destroy it
    }
    return n;
}

void deadline_queue::arm(clock::time_point at) {
    timer_at_ = at;
    timer_->expires_at(at);   // a wait it replaces ends as cancelled
    timer_->async_wait([this](boost::system::error_code ec) {
        if (ec) return;   // replaced, or the queue is gone: `this` may be too
        timer_at_ = clock::time_point::max();
        expire(clock::now());
        if (head_ && head_->at_ < timer_at_) arm(head_->at_);
    });
}

} // namespace trestle::proxy
