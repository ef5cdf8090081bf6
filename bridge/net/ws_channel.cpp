#include "bridge/net/ws_channel.hpp"

#include <boost/asio/post.hpp>

namespace trestle::net {

namespace asio = boost::asio;

ws_channel::ws_channel(asio::any_io_executor io, request_head head, const endpoint_info& ep, std::size_t hwm)
    : head_(std::move(head)), endpoint_(ep), io_(io), wakeup_(io), reader_wakeup_(io), hwm_(hwm) {}

void ws_channel::wake_io_locked() {
    if (!io_waiting_) return;
    io_waiting_ = false;
    asio::post(io_, [self = shared_from_this()] { self->wakeup_.cancel(); });
}

void ws_channel::wake_app_locked() {
    if (app_waker_) app_waker_();
}

void ws_channel::set_app_waker(std::function<void()> waker) {
    std::lock_guard lock(m_);
    app_waker_ = std::move(waker);
}

bool ws_channel::command(ws_command c) {
    std::lock_guard lock(m_);
    if (c.kind == ws_command::send) out_bytes_ += c.frame.data.size();
    commands_.push_back(std::move(c));
    wake_io_locked();
    return out_bytes_ <= hwm_;
}

bool ws_channel::writable() {
    std::lock_guard lock(m_);
    return out_bytes_ <= hwm_ || closed_.has_value();
}

std::optional<ws_frame> ws_channel::pop_frame() {
    std::lock_guard lock(m_);
    if (inbound_.empty()) return std::nullopt;
    ws_frame f = std::move(inbound_.front());
    inbound_.pop_front();
    bool was_full = in_bytes_ > hwm_;
    in_bytes_ -= f.data.size();
    if (was_full && in_bytes_ <= hwm_ && reader_waiting_) {
        reader_waiting_ = false;
        asio::post(io_, [self = shared_from_this()] { self->reader_wakeup_.cancel(); });
    }
    return f;
}

std::optional<std::uint16_t> ws_channel::closed_code() {
    std::lock_guard lock(m_);
    if (!inbound_.empty()) return std::nullopt;
    return closed_;
}

bool ws_channel::take(std::deque<ws_command>& out) {
    std::lock_guard lock(m_);
    if (commands_.empty()) {
        io_waiting_ = true;
        return false;
    }
    out.swap(commands_);
    commands_.clear();
    return true;
}

void ws_channel::sent(std::size_t bytes) {
    std::lock_guard lock(m_);
    bool was_full = out_bytes_ > hwm_;
    out_bytes_ -= std::min(out_bytes_, bytes);
    if (was_full && out_bytes_ <= hwm_) wake_app_locked();
}

bool ws_channel::push_frame(ws_frame f) {
    std::lock_guard lock(m_);
    in_bytes_ += f.data.size();
    inbound_.push_back(std::move(f));
    wake_app_locked();
    return in_bytes_ <= hwm_;
}

bool ws_channel::reader_may_continue() {
    std::lock_guard lock(m_);
    bool ok = in_bytes_ <= hwm_ || closed_.has_value();
    if (!ok) reader_waiting_ = true;
    return ok;
}

void ws_channel::peer_closed(std::uint16_t code) {
    std::lock_guard lock(m_);
    if (!closed_) closed_ = code;
    wake_app_locked();
}

} // namespace trestle::net
