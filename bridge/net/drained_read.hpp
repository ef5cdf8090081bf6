#pragma once
// async_read_drained(socket, buffer, token): a socket's async_read_some that
// remembers when a read emptied the socket, so that the next read waits for
// epoll instead of first trying a recv that can only fail with EAGAIN.
//
// Why: Asio tries every read at once (speculatively) unless its reactor has
// seen the socket exhausted, which it only concludes from a 0-byte read. On a
// keep-alive connection the read for the next request, and a proxy's read of
// the upstream's answer, come right after a short read that emptied the
// socket, so each of them cost a failed recvfrom: one system call more per
// request than nginx makes. This read reports a short read as exhausting the
// socket (as nginx clears its "ready" flag after one). That is sound for a
// stream socket under edge-triggered epoll, which Asio uses: a short read
// took everything queued, and anything that arrives later raises a new edge,
// which makes the reactor try reads again. But see below.
//
// What a short read cannot tell: an end of stream (or a reset) that arrived
// together with the last bytes. epoll raised its edge with theirs, so a read
// that then waits for the next edge waits for nothing. So it is used only
// where the peer's end is looked for another way: the session's reads
// between requests, which session::check_boundary_eof covers with one peek
// per wait on the registry's tick. Not for a proxy's upstream, where an end
// of stream ends a close-delimited body.
//
// It builds on Asio's reactor internals (boost/asio/detail), as of Boost
// 1.81 on Linux with epoll; on anything else it is plain async_read_some.
// Every read of a socket that uses it must read into a buffer and take what
// the kernel gives (no MSG_PEEK reads around it), so that a short read does
// mean empty.
#include <boost/asio/async_result.hpp>
#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/version.hpp>

#if defined(BOOST_ASIO_HAS_EPOLL) && !defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT) && BOOST_VERSION >= 108100 && \
    BOOST_VERSION < 108200
#define TRESTLE_DRAINED_READ 1
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/detail/bind_handler.hpp>
#include <boost/asio/detail/fenced_block.hpp>
#include <boost/asio/detail/handler_alloc_helpers.hpp>
#include <boost/asio/detail/handler_cont_helpers.hpp>
#include <boost/asio/detail/handler_work.hpp>
#include <boost/asio/detail/memory.hpp>
#include <boost/asio/detail/reactor.hpp>
#include <boost/asio/detail/reactor_op.hpp>
#include <boost/asio/detail/socket_ops.hpp>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/query.hpp>
#endif

namespace trestle::net {

#if TRESTLE_DRAINED_READ
namespace drained_detail {

namespace ad = boost::asio::detail;

template <typename Handler, typename IoExecutor>
class recv_op : public ad::reactor_op {
public:
    BOOST_ASIO_DEFINE_HANDLER_PTR(recv_op);

    recv_op(const boost::system::error_code& success_ec, ad::socket_type s, boost::asio::mutable_buffer b,
            Handler& handler, const IoExecutor& io_ex)
        : reactor_op(success_ec, &recv_op::do_perform, &recv_op::do_complete), socket_(s), buffer_(b),
          handler_(static_cast<Handler&&>(handler)), work_(handler_, io_ex) {}

    static status do_perform(reactor_op* base) {
        auto* o = static_cast<recv_op*>(base);
        if (!ad::socket_ops::non_blocking_recv1(o->socket_, o->buffer_.data(), o->buffer_.size(), 0, true, o->ec_,
                                                o->bytes_transferred_))
            return not_done;   // EAGAIN: wait for epoll
        // Short (or an error, or end of stream): the socket is empty for now.
        return o->bytes_transferred_ < o->buffer_.size() ? done_and_exhausted : done;
    }

    static void do_complete(void* owner, ad::operation* base, const boost::system::error_code&, std::size_t) {
        auto* o = static_cast<recv_op*>(base);
        ptr p = {boost::asio::detail::addressof(o->handler_), o, o};
        ad::handler_work<Handler, IoExecutor> w(static_cast<ad::handler_work<Handler, IoExecutor>&&>(o->work_));
        // The handler is moved out before the operation's memory is freed,
        // since the handler may own that memory.
        ad::binder2<Handler, boost::system::error_code, std::size_t> handler(o->handler_, o->ec_,
                                                                             o->bytes_transferred_);
        p.h = boost::asio::detail::addressof(handler.handler_);
        p.reset();
        if (owner) {
            ad::fenced_block b(ad::fenced_block::half);
            w.complete(handler, handler.handler_);
        }
    }

private:
    ad::socket_type socket_;
    boost::asio::mutable_buffer buffer_;
    Handler handler_;
    ad::handler_work<Handler, IoExecutor> work_;
};

// Per-operation cancellation (a cancellation slot bound to the handler, as
// awaitable operators use): the reactor drops the queued read.
struct cancel_read {
    ad::reactor* reactor;
    ad::reactor::per_descriptor_data* data;
    ad::socket_type fd;
    cancel_read(ad::reactor* r, ad::reactor::per_descriptor_data* d, ad::socket_type f) : reactor(r), data(d), fd(f) {}
    void operator()(boost::asio::cancellation_type_t type) {
        using ct = boost::asio::cancellation_type;
        if (!!(type & (ct::terminal | ct::partial | ct::total)))
            reactor->cancel_ops_by_key(fd, *data, ad::reactor::read_op, this);
    }
};

// basic_socket's implementation object is protected; a pointer to it,
// formed in a derived class, reaches it on any socket of that type.
template <typename Socket>
struct impl_access : Socket {
    static constexpr auto member = &impl_access::impl_;
};

// The reactor of the socket's io_context. Looked up per read (Asio finds it
// by its id, under the registry's mutex) rather than cached per thread: a
// thread may outlive a context and then run another at the same address.
inline ad::reactor& reactor_for(boost::asio::execution_context& ctx) {
    return boost::asio::use_service<ad::reactor>(ctx);
}

} // namespace drained_detail

template <typename Protocol, typename Executor, typename Token>
auto async_read_drained(boost::asio::basic_stream_socket<Protocol, Executor>& s, boost::asio::mutable_buffer b,
                        Token&& token) {
    using socket_type = boost::asio::basic_stream_socket<Protocol, Executor>;
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [&s, b](auto handler) {
            namespace ad = boost::asio::detail;
            using handler_type = decltype(handler);
            using op = drained_detail::recv_op<handler_type, Executor>;
            auto& io = s.*drained_detail::impl_access<socket_type>::member;
            auto& impl = io.get_implementation();
            auto& reactor = drained_detail::reactor_for(
                boost::asio::query(s.get_executor(), boost::asio::execution::context));
            bool is_continuation = boost_asio_handler_cont_helpers::is_continuation(handler);
            auto slot = boost::asio::get_associated_cancellation_slot(handler);
            typename op::ptr p = {boost::asio::detail::addressof(handler), op::ptr::allocate(handler), 0};
            p.p = new (p.v) op(boost::system::error_code(), impl.socket_, b, handler, s.get_executor());
            if (slot.is_connected())
                p.p->cancellation_key_ =
                    &slot.template emplace<drained_detail::cancel_read>(&reactor, &impl.reactor_data_, impl.socket_);
            // As the socket service does: reads on a socket that is not yet
            // in non-blocking mode switch it first.
            if (!(impl.state_ & ad::socket_ops::non_blocking) &&
                !ad::socket_ops::set_internal_non_blocking(impl.socket_, impl.state_, true, p.p->ec_)) {
                reactor.post_immediate_completion(p.p, is_continuation);
            } else if (b.size() == 0) {
                reactor.post_immediate_completion(p.p, is_continuation);   // nothing to read into
            } else {
                reactor.start_op(ad::reactor::read_op, impl.socket_, impl.reactor_data_, p.p, is_continuation, true);
            }
            p.v = p.p = 0;
        },
        token);
}
#else
template <typename Protocol, typename Executor, typename Token>
auto async_read_drained(boost::asio::basic_stream_socket<Protocol, Executor>& s, boost::asio::mutable_buffer b,
                        Token&& token) {
    return s.async_read_some(b, static_cast<Token&&>(token));
}
#endif

} // namespace trestle::net
