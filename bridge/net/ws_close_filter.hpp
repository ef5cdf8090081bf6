#pragma once
// The layer between the socket and Beast's websocket stream that makes a
// peer's close code of 5000 or more fail the connection with 1002.
//
// RFC 6455 7.4.2 defines no close code from 5000 on, so a peer that sends one
// breaks the protocol, as one that sends 1005 or 999 does. Beast 1.81 rejects
// the latter (a close 1002) but accepts and echoes the former, and offers no
// hook to refuse a code before it answers. This layer follows the client's
// frame headers as the bytes are read and, in a close frame, turns such a
// code into 0 (in place, through the frame's mask), which Beast then rejects
// as it rejects 0-999. Only headers and close payloads are looked at; data
// payloads are skipped over.
//
// One corner stays open: a code from 0x1388 to 0x13FF (5000-5119) whose two
// bytes arrive in different reads, in a close frame with no reason. The high
// byte has then gone to Beast already, and no change to the low byte alone
// makes the code one Beast refuses. With a reason, its first byte is made
// invalid UTF-8 instead, which Beast also answers with 1002.
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/beast/core/role.hpp>
#include <boost/beast/websocket/teardown.hpp>

#include "bridge/net/transport.hpp"

#include <cstdint>

namespace trestle::net {

// Follows the frames of one direction of a WebSocket byte stream.
class close_code_scanner {
public:
    // Looks at the next `n` bytes of the stream, changing a forbidden close
    // code in place.
    void scan(unsigned char* p, std::size_t n);

private:
    void header_done();
    void close_byte(unsigned char* p);

    unsigned char hdr_[14] = {};
    std::size_t hdr_len_ = 0;
    std::size_t hdr_need_ = 2;
    bool in_payload_ = false;
    bool close_ = false;
    std::uint64_t payload_left_ = 0;
    std::uint64_t payload_pos_ = 0;
    unsigned char mask_[4] = {};
    unsigned char* high_ = nullptr;   // the code's high byte, within the current scan() only
    unsigned char high_value_ = 0;
    bool spoil_reason_ = false;
};

// Next: the connection's transport, or an HTTP/2 stream (h2_stream_io).
template <class Next>
class basic_close_code_filter {
public:
    using socket_type = Next;
    using next_layer_type = socket_type;
    using executor_type = typename socket_type::executor_type;

    explicit basic_close_code_filter(socket_type& s) : s_(s) {}

    executor_type get_executor() { return s_.get_executor(); }
    socket_type& next_layer() { return s_; }

    template <class MutableBuffers, class Handler>
    auto async_read_some(const MutableBuffers& bufs, Handler&& handler) {
        return boost::asio::async_initiate<Handler, void(boost::system::error_code, std::size_t)>(
            [this](auto h, const MutableBuffers& b) {
                auto ex = boost::asio::get_associated_executor(h, s_.get_executor());
                s_.async_read_some(b, boost::asio::bind_executor(
                                          ex, [this, b, h = std::move(h)](boost::system::error_code ec,
                                                                          std::size_t n) mutable {
                                              scan(b, n);
                                              std::move(h)(ec, n);
                                          }));
            },
            handler, bufs);
    }

    template <class ConstBuffers, class Handler>
    auto async_write_some(const ConstBuffers& bufs, Handler&& handler) {
        return s_.async_write_some(bufs, std::forward<Handler>(handler));
    }

private:
    template <class MutableBuffers>
    void scan(const MutableBuffers& bufs, std::size_t n) {
        for (auto it = boost::asio::buffer_sequence_begin(bufs); n > 0 && it != boost::asio::buffer_sequence_end(bufs);
             ++it) {
            boost::asio::mutable_buffer b = *it;
            std::size_t k = b.size() < n ? b.size() : n;
            scanner_.scan(static_cast<unsigned char*>(b.data()), k);
            n -= k;
        }
    }

    socket_type& s_;
    close_code_scanner scanner_;
};

using close_code_filter = basic_close_code_filter<transport>;

// Beast closes the connection through these (found by argument-dependent
// lookup); the layer below does the work (transport.hpp, h2_stream_io.hpp).
template <class Next>
void teardown(boost::beast::role_type role, basic_close_code_filter<Next>& f, boost::system::error_code& ec) {
    teardown(role, f.next_layer(), ec);
}

template <class Next, class Handler>
void async_teardown(boost::beast::role_type role, basic_close_code_filter<Next>& f, Handler&& handler) {
    async_teardown(role, f.next_layer(), std::forward<Handler>(handler));
}

} // namespace trestle::net
