#include "adapters/shadow/ports.hpp"

#include "adapters/shadow/mirror.hpp"

#include <cstring>

namespace trestle::shadow {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}
} // namespace

slot::~slot() {
    if (m_) m_->give_slot();
}

// ---- tee_port -------------------------------------------------------------------

tee_port::tee_port(std::shared_ptr<net::app_port> inner, slot s, std::size_t cap)
    : inner_(std::move(inner)), slot_(std::move(s)), cap_(cap), out_(inner_->head().head_method, cap) {}

void tee_port::copy_body(const char* p, std::optional<std::size_t> n) {
    if (!n || *n == 0) return;
    std::lock_guard lock(m_);
    if (body_too_large_) return;
    if (body_.size() + *n > cap_) {
        body_too_large_ = true;
        body_.clear();
        body_.shrink_to_fit();
        return;
    }
    body_.append(p, *n);
}

std::optional<std::size_t> tee_port::try_read(char* dst, std::size_t n) {
    auto got = inner_->try_read(dst, n);
    copy_body(dst, got);
    return got;
}

std::optional<std::size_t> tee_port::read(char* dst, std::size_t n) {
    auto got = inner_->read(dst, n);
    copy_body(dst, got);
    return got;
}

net::app_port::write_result tee_port::try_write(std::string& bytes) {
    // Seen before they are handed on (taken, they are gone). Bytes refused
    // (would_block) come again, maybe with more after them: the part seen
    // already is skipped then.
    {
        std::lock_guard lock(m_);
        std::size_t skip = std::min(seen_ahead_, bytes.size());
        out_.feed(std::string_view(bytes).substr(skip));
        seen_ahead_ = bytes.size();
    }
    auto r = inner_->try_write(bytes);
    if (r != write_result::would_block) {
        std::lock_guard lock(m_);
        seen_ahead_ = 0;
    }
    return r;
}

bool tee_port::write(std::string& bytes) {
    {
        std::lock_guard lock(m_);
        std::size_t skip = std::min(seen_ahead_, bytes.size());
        out_.feed(std::string_view(bytes).substr(skip));
        seen_ahead_ = 0;
    }
    return inner_->write(bytes);
}

bool tee_port::send_file(net::file_job job) {
    std::uint64_t n = job.count;
    bool ok = inner_->send_file(std::move(job));
    if (ok) {
        std::lock_guard lock(m_);
        out_.file(n);
    }
    return ok;
}

void tee_port::queue_file(net::file_job job) {
    std::uint64_t n = job.count;
    inner_->queue_file(std::move(job));
    std::lock_guard lock(m_);
    out_.file(n);
}

void tee_port::arm_timeout(std::chrono::steady_clock::time_point deadline, net::timeout_listener* l, void* tag) {
    inner_->arm_timeout(deadline, l, tag);
}

void tee_port::finish(bool keep_alive, std::string& last) {
    // The body the app left unread, if it is at hand without waiting (a
    // body bigger than memory holds is not replayed).
    bool body_whole = true;
    {
        char buf[16384];
        for (;;) {
            auto got = inner_->try_read(buf, sizeof buf);
            if (!got) {
                body_whole = inner_->body_consumed();
                break;
            }
            if (*got == 0) break;
            copy_body(buf, got);
        }
    }
    {
        std::lock_guard lock(m_);
        out_.feed(std::string_view(last).substr(std::min(seen_ahead_, last.size())));
        seen_ahead_ = 0;
    }
    const boost::asio::any_io_executor io = inner_->io_executor();
    const bool failed = inner_->client_gone() || inner_->timed_out();
    double took = seconds_since(started_);
    net::request_head head = inner_->head();
    net::endpoint_info ep = inner_->endpoint();
    // The client's answer first.
    inner_->finish(keep_alive, last);

    std::lock_guard lock(m_);
    out_.finish();
    mirror& m = slot_.owner();
    if (failed || !out_.result().complete) return m.dropped(drop::primary_failed);
    if (body_too_large_ || !body_whole) return m.dropped(drop::body_too_large);
    // The slot goes with the replay, to the replay's port.
    m.replay(std::move(slot_), std::move(head), std::move(ep), std::move(body_), std::move(out_.result()), took, io);
}

// ---- replay_port ------------------------------------------------------------------

replay_port::replay_port(net::request_head head, net::endpoint_info ep, std::string body,
                         boost::asio::any_io_executor io, std::size_t cap, std::unique_ptr<trial> t, slot s)
    : endpoint_(std::move(ep)), io_(std::move(io)), body_(std::move(body)), out_(head.head_method, cap),
      trial_(std::move(t)), head_(std::move(head)), slot_(std::move(s)) {}

replay_port::~replay_port() {
    // An app that never finished (it raised before answering, or was
    // dropped): judged with what it wrote.
    std::lock_guard lock(m_);
    deliver_locked(false);
}

std::optional<std::size_t> replay_port::try_read(char* dst, std::size_t n) {
    std::lock_guard lock(m_);
    if (reads_cancelled_ || gone_) return std::nullopt;
    std::size_t take = std::min(n, body_.size() - body_pos_);
    std::memcpy(dst, body_.data() + body_pos_, take);
    body_pos_ += take;
    return take;
}

void replay_port::cancel_reads() {
    std::lock_guard lock(m_);
    reads_cancelled_ = true;
}

bool replay_port::body_consumed() {
    std::lock_guard lock(m_);
    return body_pos_ == body_.size();
}

net::app_port::write_result replay_port::try_write(std::string& bytes) {
    std::lock_guard lock(m_);
    if (gone_) return write_result::gone;
    started_output_ = started_output_ || !bytes.empty();
    if (!delivered_) out_.feed(bytes);
    bytes.clear();
    return write_result::ok;
}

bool replay_port::send_file(net::file_job job) {
    // The file itself is not read: the comparison sees its size.
    std::lock_guard lock(m_);
    if (gone_) return false;
    started_output_ = true;
    if (!delivered_) out_.file(job.count);
    return true;
}

void replay_port::finish(bool, std::string& last) {
    std::lock_guard lock(m_);
    if (!gone_ && !delivered_) {
        started_output_ = started_output_ || !last.empty();
        out_.feed(last);
    }
    last.clear();
    deliver_locked(false);
}

bool replay_port::client_gone() {
    std::lock_guard lock(m_);
    return gone_;
}

bool replay_port::output_started() {
    std::lock_guard lock(m_);
    return started_output_;
}

void replay_port::set_app_waker(std::function<void()> waker) {
    std::lock_guard lock(m_);
    waker_ = std::move(waker);
}

void replay_port::arm_timeout(std::chrono::steady_clock::time_point, net::timeout_listener* l, void* tag) {
    // Only the shadow's own timeout applies; the listener (the WSGI
    // watchdog) is told when it passes.
    std::lock_guard lock(m_);
    listener_ = l;
    tag_ = tag;
}

bool replay_port::timed_out() const {
    std::lock_guard lock(m_);
    return gone_;
}

void replay_port::time_out() {
    std::lock_guard lock(m_);
    if (delivered_ || gone_) return;
    gone_ = true;
    if (listener_) listener_->request_timed_out(*this, !started_output_, tag_);
    if (waker_) waker_();
    deliver_locked(true);
}

void replay_port::refused() {
    {
        std::lock_guard lock(m_);
        delivered_ = true;   // nothing to judge
        trial_.reset();
    }
    slot_.owner().replay_finished();
}

void replay_port::launched() {
    std::lock_guard lock(m_);
    started_ = std::chrono::steady_clock::now();
}

void replay_port::deliver_locked(bool timed_out) {
    if (delivered_) return;
    delivered_ = true;
    out_.finish();
    trial_->head = head_;
    trial_->shadow = std::move(out_.result());
    trial_->shadow_seconds = seconds_since(started_);
    trial_->timed_out = timed_out;
    slot_.owner().judge(std::move(trial_));
    slot_.owner().replay_finished();
}

} // namespace trestle::shadow
