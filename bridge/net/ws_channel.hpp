#pragma once
// The state one WebSocket connection shares between its io thread and the
// app on the event loop. Like exchange, the io side never blocks and is
// woken by a post; the app side never blocks either and is woken through
// its waker (a post to the loop).
#include "bridge/net/request.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace trestle::net {

struct ws_frame {
    bool text = false;
    std::string data;
};

// RFC 6455 7.4: the close codes an endpoint may put in a close frame, and
// the only ones a peer may send. 1005, 1006 and 1015 only report what
// happened; 1004 and 1016-2999 are reserved for the protocol; codes under
// 1000 and from 5000 on are not used.
constexpr bool sendable_close_code(unsigned code) {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}
// A close frame's payload is at most 125 bytes: the code, then the reason.
constexpr std::size_t max_close_reason = 123;

// What the app asked the io side to do.
struct ws_command {
    enum kind_t { accept, deny, send, close } kind;
    ws_frame frame;                                         // send
    std::string subprotocol;                                // accept
    std::vector<std::pair<std::string, std::string>> headers;   // accept, deny
    unsigned status = 403;                                  // deny
    std::string body;                                       // deny
    std::uint16_t code = 1000;                              // close
    std::string reason;                                     // close
};

class ws_channel : public std::enable_shared_from_this<ws_channel> {
public:
    ws_channel(boost::asio::any_io_executor io, request_head head, const endpoint_info& ep,
               std::size_t hwm);

    const request_head& head() const { return head_; }
    const endpoint_info& endpoint() const { return endpoint_; }

    // ---- app side (loop thread) ------------------------------------------
    void set_app_waker(std::function<void()> waker);
    // Queues a command. For send, false when the queued output is above the
    // high-water mark (the frame is queued anyway; wait for writable()).
    bool command(ws_command c);
    bool writable();
    // The next received frame, or the close code once the peer is gone.
    std::optional<ws_frame> pop_frame();
    std::optional<std::uint16_t> closed_code();

    // ---- io side ---------------------------------------------------------
    boost::asio::steady_timer& wakeup_timer() { return wakeup_; }
    boost::asio::steady_timer& reader_timer() { return reader_wakeup_; }
    // Takes queued commands; false (and arms the wakeup) when there are none.
    bool take(std::deque<ws_command>& out);
    void sent(std::size_t bytes);
    // A frame arrived. Returns false when the app is behind by more than the
    // high-water mark: the reader should pause, wait on reader_timer() and
    // ask reader_may_continue() (which arms the wakeup when it says no).
    bool push_frame(ws_frame f);
    bool reader_may_continue();
    void peer_closed(std::uint16_t code);   // also when the connection failed (1006)

private:
    void wake_io_locked();
    void wake_app_locked();

    request_head head_;
    endpoint_info endpoint_;
    boost::asio::any_io_executor io_;
    boost::asio::steady_timer wakeup_;
    boost::asio::steady_timer reader_wakeup_;
    std::size_t hwm_;

    std::mutex m_;
    std::function<void()> app_waker_;
    bool io_waiting_ = false;
    bool reader_waiting_ = false;
    std::deque<ws_command> commands_;
    std::size_t out_bytes_ = 0;     // queued or being written
    std::deque<ws_frame> inbound_;
    std::size_t in_bytes_ = 0;
    std::optional<std::uint16_t> closed_;
};

} // namespace trestle::net
