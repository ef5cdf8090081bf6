#pragma once
// One HTTP/2 stream as a byte stream: what a WebSocket over HTTP/2 (RFC
// 8441) runs on. The stream's DATA frames carry the WebSocket frames both
// ways, unchanged, so Beast's websocket stream reads and writes them here as
// it does on a socket.
//
// It is an Asio AsyncStream on the connection's io thread. The connection
// (h2_connection) feeds it what arrives and pulls what is written, through
// the link below; everything here runs on that one thread. Flow control is
// the backpressure, as for request bodies: the stream's window opens only as
// the WebSocket reads, and a write waits while more than `out_cap` bytes are
// queued for the peer's window.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/role.hpp>

#include <cstdint>
#include <string>

namespace trestle::net {

struct ws_command;

// What the stream asks of its connection.
class h2_stream_link {
public:
    // The WebSocket took `n` bytes: the peer may send as many more.
    virtual void stream_consumed(std::int32_t id, std::size_t n) = 0;
    // Bytes were queued, or the output ended: send them.
    virtual void stream_output(std::int32_t id) = 0;
    // The app's first answer: accept (200 and its fields) or deny (its
    // status, fields and body; the stream then ends).
    virtual void stream_answer(std::int32_t id, const ws_command& first) = 0;
    // The WebSocket gave up on the stream before ending it: RST_STREAM.
    virtual void stream_abort(std::int32_t id) = 0;

protected:
    ~h2_stream_link() = default;
};

class h2_stream_io {
public:
    using executor_type = boost::asio::any_io_executor;
    static constexpr std::size_t out_cap = 64 * 1024;

    h2_stream_io(executor_type ex, h2_stream_link* link, std::int32_t id)
        : ex_(std::move(ex)), link_(link), id_(id), read_wait_(ex_), write_wait_(ex_) {}

    executor_type get_executor() { return ex_; }

    // ---- the connection's side ---------------------------------------
    void deliver(const char* p, std::size_t n);
    void end_input();
    // The stream is gone (reset, closed, or the connection ended): every
    // operation fails from now on and the link is never called again.
    void fail();
    // Copies up to `len` queued bytes out; 0 when none wait.
    std::size_t pull(std::uint8_t* buf, std::size_t len);
    bool output_pending() const { return out_.size() > out_pos_; }
    bool output_ended() const { return out_end_ && !output_pending(); }
    bool input_ended() const { return in_eof_; }
    std::size_t unread() const { return in_.size() - in_pos_; }
    const bool& gone() const { return failed_; }

    // ---- the WebSocket's side ----------------------------------------
    void answer(const ws_command& first);
    // While set, writes are taken and dropped: the HTTP/1.1 101 that
    // Beast's handshake writes has no place on an HTTP/2 stream, whose 200
    // went out in HEADERS.
    void discard_writes(bool on) { discard_ = on; }
    // Ends the output: END_STREAM after what is queued.
    void end_output();
    // Gives up on the stream: reset unless its output has ended.
    void close(boost::system::error_code& ec);

    template <class MutableBuffers, class Token>
    auto async_read_some(const MutableBuffers& bufs, Token&& token) {
        return boost::asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
            op<read_step<MutableBuffers>>{this, &read_wait_, {this, bufs}}, token, ex_);
    }
    template <class ConstBuffers, class Token>
    auto async_write_some(const ConstBuffers& bufs, Token&& token) {
        return boost::asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
            op<write_step<ConstBuffers>>{this, &write_wait_, {this, bufs}}, token, ex_);
    }

private:
    // Tries the operation: true with its result, false to wait for a wake-up.
    bool try_read(boost::asio::mutable_buffer b, boost::system::error_code& ec, std::size_t& n);
    bool try_write(const char* const* parts, const std::size_t* sizes, std::size_t count,
                   boost::system::error_code& ec, std::size_t& n);

    template <class MutableBuffers>
    struct read_step {
        h2_stream_io* s;
        MutableBuffers bufs;
        bool operator()(boost::system::error_code& ec, std::size_t& n) {
            for (auto it = boost::asio::buffer_sequence_begin(bufs); it != boost::asio::buffer_sequence_end(bufs); ++it)
                if (boost::asio::mutable_buffer b = *it; b.size() > 0) return s->try_read(b, ec, n);
            return s->try_read({}, ec, n);
        }
    };
    template <class ConstBuffers>
    struct write_step {
        h2_stream_io* s;
        ConstBuffers bufs;
        bool operator()(boost::system::error_code& ec, std::size_t& n) {
            // A frame's header and payload: a few buffers at most.
            const char* parts[8];
            std::size_t sizes[8];
            std::size_t count = 0;
            for (auto it = boost::asio::buffer_sequence_begin(bufs);
                 it != boost::asio::buffer_sequence_end(bufs) && count < 8; ++it) {
                boost::asio::const_buffer b = *it;
                parts[count] = static_cast<const char*>(b.data());
                sizes[count++] = b.size();
            }
            return s->try_write(parts, sizes, count, ec, n);
        }
    };

    // An operation retried after every wake-up of its timer. One done at
    // once completes through the executor, never inside the call that
    // started it.
    template <class Step>
    struct op {
        h2_stream_io* s;
        boost::asio::steady_timer* wait;
        Step step;
        int state = 0;   // 0: first try, 1: after a wait, 2: done, result posted
        boost::system::error_code result_ec{};
        std::size_t result_n = 0;

        template <class Self>
        void operator()(Self& self, boost::system::error_code = {}) {
            if (state == 2) return self.complete(result_ec, result_n);
            if (!step(result_ec, result_n)) {
                state = 1;
                wait->expires_at(boost::asio::steady_timer::time_point::max());
                return wait->async_wait(std::move(self));
            }
            if (state == 0) {
                state = 2;
                return boost::asio::post(s->ex_, std::move(self));
            }
            self.complete(result_ec, result_n);
        }
    };

    executor_type ex_;
    h2_stream_link* link_;
    std::int32_t id_;
    boost::asio::steady_timer read_wait_;
    boost::asio::steady_timer write_wait_;
    std::string in_;
    std::size_t in_pos_ = 0;
    bool in_eof_ = false;
    std::string out_;
    std::size_t out_pos_ = 0;
    bool out_end_ = false;
    bool discard_ = false;
    bool failed_ = false;
};

// Beast gives up on a stream through this, and closes one through the two
// teardowns (argument-dependent lookup): the stream's output ends.
inline void beast_close_socket(h2_stream_io& s) {
    boost::system::error_code ignored;
    s.close(ignored);
}
void teardown(boost::beast::role_type, h2_stream_io& s, boost::system::error_code& ec);

template <class Handler>
void async_teardown(boost::beast::role_type, h2_stream_io& s, Handler&& handler) {
    s.end_output();
    boost::asio::post(s.get_executor(),
                      boost::asio::append(std::forward<Handler>(handler), boost::system::error_code{}));
}

} // namespace trestle::net
