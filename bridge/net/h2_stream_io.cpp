#include "bridge/net/h2_stream_io.hpp"

#include <boost/asio/error.hpp>

#include <algorithm>
#include <cstring>

namespace trestle::net {

namespace {
// Bytes already taken from the front of a buffer are dropped once they are
// this many (or all of it), not on every read.
constexpr std::size_t compact_after = 64 * 1024;

void compact(std::string& s, std::size_t& pos) {
    if (pos == s.size()) {
        s.clear();
        pos = 0;
    } else if (pos >= compact_after) {
        s.erase(0, pos);
        pos = 0;
    }
}
} // namespace

void h2_stream_io::deliver(const char* p, std::size_t n) {
    if (failed_) return;
    in_.append(p, n);
    read_wait_.cancel();
}

void h2_stream_io::end_input() {
    in_eof_ = true;
    read_wait_.cancel();
}

void h2_stream_io::fail() {
    if (failed_) return;
    failed_ = true;
    link_ = nullptr;
    read_wait_.cancel();
    write_wait_.cancel();
}

std::size_t h2_stream_io::pull(std::uint8_t* buf, std::size_t len) {
    std::size_t n = std::min(len, out_.size() - out_pos_);
    if (n == 0) return 0;
    bool was_full = out_.size() - out_pos_ >= out_cap;
    std::memcpy(buf, out_.data() + out_pos_, n);
    out_pos_ += n;
    compact(out_, out_pos_);
    if (was_full && out_.size() - out_pos_ < out_cap) write_wait_.cancel();
    return n;
}

void h2_stream_io::answer(const ws_command& first) {
    if (link_) link_->stream_answer(id_, first);
}

void h2_stream_io::close(boost::system::error_code& ec) {
    ec = {};
    if (link_ && !out_end_) link_->stream_abort(id_);
    fail();
}

void h2_stream_io::end_output() {
    if (out_end_ || failed_) return;
    out_end_ = true;
    if (link_) link_->stream_output(id_);
}

bool h2_stream_io::try_read(boost::asio::mutable_buffer b, boost::system::error_code& ec, std::size_t& n) {
    n = 0;
    ec = {};
    if (failed_) {
        ec = boost::asio::error::connection_reset;
        return true;
    }
    if (b.size() == 0) return true;
    if (std::size_t have = in_.size() - in_pos_; have > 0) {
        n = std::min(have, b.size());
        std::memcpy(b.data(), in_.data() + in_pos_, n);
        in_pos_ += n;
        compact(in_, in_pos_);
        if (link_) link_->stream_consumed(id_, n);
        return true;
    }
    if (in_eof_) {
        ec = boost::asio::error::eof;
        return true;
    }
    return false;
}

bool h2_stream_io::try_write(const char* const* parts, const std::size_t* sizes, std::size_t count,
                             boost::system::error_code& ec, std::size_t& n) {
    n = 0;
    ec = {};
    if (failed_ || out_end_) {
        ec = boost::asio::error::broken_pipe;
        return true;
    }
    std::size_t total = 0;
    for (std::size_t i = 0; i < count; ++i) total += sizes[i];
    if (discard_) {
        n = total;
        return true;
    }
    if (total == 0) return true;
    if (out_.size() - out_pos_ >= out_cap) return false;   // the peer's window is behind: wait
    for (std::size_t i = 0; i < count; ++i) out_.append(parts[i], sizes[i]);
    n = total;
    if (link_) link_->stream_output(id_);
    return true;
}

void teardown(boost::beast::role_type, h2_stream_io& s, boost::system::error_code& ec) {
    s.end_output();
    ec = {};
}

} // namespace trestle::net
