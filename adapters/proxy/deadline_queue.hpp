#pragma once
// The upstream deadlines of the proxy calls on one io thread, in one list
// sorted by time and served by one Asio timer.
//
// Why: a timer per call cost a service lookup under a mutex to make, a heap
// insertion to arm and a cancellation (a completion through the scheduler)
// when the call ended: about 1.3k instructions of a 24k-instruction proxied
// request. Here arming a deadline links the call into the list, nearly
// always at its tail, since most deadlines are "now + read_timeout" and so
// come in time order, and ending it unlinks it: a few pointer writes. The
// timer is armed again only when a deadline earlier than its own is added,
// or when it fires; a wait that finds its entry gone just waits for the new
// head.
//
// One queue per io_context, as an Asio service (of()): it lives and dies
// with the context, and is used only from the context's one io thread.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <optional>

namespace trestle::proxy {

class deadline_queue : public boost::asio::execution_context::service {
public:
    using clock = std::chrono::steady_clock;
    using key_type = deadline_queue;
    static boost::asio::execution_context::id id;   // found by address, not by type name

    // What waits on the queue; unlinks itself when destroyed.
    class entry {
    public:
        entry() = default;
        entry(const entry&) = delete;
        entry& operator=(const entry&) = delete;
        virtual ~entry() { cancel(); }

        bool pending() const { return queue_ != nullptr; }
        clock::time_point at() const { return at_; }
        void cancel();

    protected:
        // The deadline came; the entry is already unlinked.
        virtual void expired() = 0;

    private:
        friend class deadline_queue;
        deadline_queue* queue_ = nullptr;
        entry* prev_ = nullptr;
        entry* next_ = nullptr;
        clock::time_point at_ = clock::time_point::max();
    };

    explicit deadline_queue(boost::asio::execution_context& ctx);
    ~deadline_queue() override;

    // The queue of the io_context behind ex.
    static deadline_queue& of(const boost::asio::any_io_executor& ex);

    // Links e to expire at `at` (moving it if it was already linked); the
    // timer, made on first need, runs on ex.
    void schedule(entry& e, clock::time_point at, const boost::asio::any_io_executor& ex);
    // Expires every entry due at `now`, earliest first; returns how many.
    // The timer calls it; tests call it with their own clock.
    std::size_t expire(clock::time_point now);

    bool empty() const { return head_ == nullptr; }
    clock::time_point timer_at() const { return timer_at_; }

private:
    void shutdown() override;
    void unlink(entry& e);
    void arm(clock::time_point at);

    std::optional<boost::asio::steady_timer> timer_;
    clock::time_point timer_at_ = clock::time_point::max();   // the pending wait's end, if any
    entry* head_ = nullptr;
    entry* tail_ = nullptr;
};

} // namespace trestle::proxy
