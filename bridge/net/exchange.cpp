#include "bridge/net/exchange.hpp"

#include "bridge/net/wake_queue.hpp"
#include "bridge/observability/metrics.hpp"

#include <algorithm>
#include <cstring>

namespace trestle::net {

namespace asio = boost::asio;

namespace {
void move_into(std::string& out, std::string& bytes) {
    if (out.empty()) out.swap(bytes);
    else out.append(bytes);
    bytes.clear();
}
} // namespace

exchange::exchange(wake_queue& io, request_head head, const endpoint_info& ep, std::size_t output_hwm)
    : head_(std::move(head)), endpoint_(ep), io_(io), hwm_(output_hwm) {}

exchange::~exchange() = default;   // an unsent file_job closes its descriptor

const asio::any_io_executor& exchange::io_executor() const { return io_.executor(); }

void exchange::wake_io_locked() {
    if (!io_waiting_) return;
    io_waiting_ = false;
    // The timer and the driver belong to the io thread: they are told there.
    // shared_from_this() is the app port's share: the same owners, as an exchange.
    io_.push(std::static_pointer_cast<exchange>(shared_from_this()));
}

void exchange::io_wake() {
    if (driver_) driver_->exchange_ready(*this);
    else cancel_wakeup();
}

asio::steady_timer& exchange::wakeup_timer() {
    if (!wakeup_) wakeup_.emplace(io_.executor());
    return *wakeup_;
}

// ---- body -------------------------------------------------------------

void exchange::preload_body(std::string body) {
    body_received_ += body.size();
    body_ = std::move(body);
    body_eof_ = true;
}

void exchange::preload_body_file(body_file file) {
    body_received_ += file.size();
    body_file_ = std::move(file);
    body_file_pos_ = 0;
    body_eof_ = true;
}

std::optional<std::size_t> exchange::copy_body_locked(char* dst, std::size_t n) {
    std::size_t avail = body_.size() - body_pos_;
    if (avail > 0 || n == 0) {
        std::size_t k = std::min(avail, n);
        std::memcpy(dst, body_.data() + body_pos_, k);
        body_pos_ += k;
        return k;
    }
    if (body_eof_) return 0;
    return std::nullopt;
}

std::optional<std::size_t> exchange::try_read(char* dst, std::size_t n) {
    std::lock_guard lock(m_);
    if (n > 0 && body_file_pos_ < body_file_.size()) return std::nullopt;   // a disk read: read()
    return copy_body_locked(dst, n);
}

std::optional<std::size_t> exchange::read(char* dst, std::size_t n) {
    std::unique_lock lock(m_);
    if (n > 0 && body_file_pos_ < body_file_.size()) {
        // The range is claimed under the lock and read outside it: the file
        // never changes once the app runs, so readers need no more than that.
        std::uint64_t at = body_file_pos_;
        std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(n, body_file_.size() - at));
        body_file_pos_ += k;
        lock.unlock();
        if (!body_file_.read_at(at, dst, k)) return std::nullopt;
        return k;
    }
    for (;;) {
        if (auto got = copy_body_locked(dst, n)) return got;
        if (body_failed_ || aborted_ || reads_cancelled_) return std::nullopt;
        if (!body_wanted_) {
            body_wanted_ = true;
            wake_io_locked();
        }
        cv_.wait(lock);
    }
}

void exchange::cancel_reads() {
    std::lock_guard lock(m_);
    reads_cancelled_ = true;
    cv_.notify_all();
}

bool exchange::body_consumed() {
    std::lock_guard lock(m_);
    return body_eof_ && body_pos_ == body_.size() && body_file_pos_ == body_file_.size();
}

void exchange::push_body(std::string& data, bool eof) {
    body_received_ += data.size();
    std::lock_guard lock(m_);
    if (body_pos_ == body_.size()) {
        body_.clear();
        body_pos_ = 0;
    }
    body_.append(data);
    data.clear();
    body_eof_ = eof;
    body_wanted_ = false;
    cv_.notify_all();
    wake_app_locked();
}

void exchange::body_failed(unsigned status) {
    std::lock_guard lock(m_);
    body_failed_ = true;
    body_error_status_ = status;
    body_wanted_ = false;
    cv_.notify_all();
    wake_app_locked();
}

unsigned exchange::body_error_status() {
    std::lock_guard lock(m_);
    return body_error_status_;
}

// ---- output -----------------------------------------------------------

exchange::write_result exchange::try_write(std::string& bytes) {
    std::lock_guard lock(m_);
    if (aborted_) return write_result::gone;
    // An empty buffer always takes the bytes, so one large write never blocks
    // forever; the app is paused before the next one instead.
    if (!out_.empty() && out_.size() + in_flight_ + bytes.size() > hwm_)
        return write_result::would_block;
    if (out_.empty() && in_flight_ > hwm_) return write_result::would_block;
    if (!bytes.empty()) output_started_ = true;
    move_into(out_, bytes);
    wake_io_locked();
    return write_result::ok;
}

bool exchange::write(std::string& bytes) {
    std::unique_lock lock(m_);
    cv_.wait(lock, [&] {
        if (aborted_) return true;
        if (out_.empty()) return in_flight_ <= hwm_;
        return out_.size() + in_flight_ + bytes.size() <= hwm_;
    });
    if (aborted_) return false;
    if (!bytes.empty()) output_started_ = true;
    move_into(out_, bytes);
    wake_io_locked();
    return true;
}

bool exchange::send_file(file_job job) {
    std::unique_lock lock(m_);
    if (aborted_) return false;   // the job's descriptor closes with it
    output_started_ = true;
    file_ = std::move(job);
    file_pending_ = true;
    wake_io_locked();
    cv_.wait(lock, [&] { return aborted_ || !file_pending_; });
    return file_ok_ && !aborted_;
}

void exchange::queue_file(file_job job) {
    std::lock_guard lock(m_);
    if (aborted_ || file_) return;   // the job's descriptor closes with it
    output_started_ = true;
    file_ = std::move(job);
    file_pending_ = true;
    wake_io_locked();
}

void exchange::finish(bool keep_alive, std::string& last) {
    std::lock_guard lock(m_);
    if (!aborted_ && !last.empty()) {
        output_started_ = true;
        move_into(out_, last);
    }
    last.clear();
    done_ = true;
    keep_alive_ = keep_alive;
    finished_at_ = std::chrono::steady_clock::now();
    wake_io_locked();
}

std::chrono::steady_clock::time_point exchange::finished_at() {
    std::lock_guard lock(m_);
    return finished_at_;
}

void exchange::wake_app_locked() {
    if (app_waker_) app_waker_();
}

void exchange::set_app_waker(std::function<void()> waker) {
    std::lock_guard lock(m_);
    app_waker_ = std::move(waker);
}

void exchange::request_body() {
    std::lock_guard lock(m_);
    if (body_eof_ || body_failed_ || aborted_ || body_wanted_) return;
    if (body_pos_ < body_.size()) return;
    body_wanted_ = true;
    wake_io_locked();
}

bool exchange::output_started() {
    std::lock_guard lock(m_);
    return output_started_;
}

bool exchange::client_gone() {
    std::lock_guard lock(m_);
    return aborted_;
}

// ---- request timeout -----------------------------------------------------

void exchange::arm_timeout(std::chrono::steady_clock::time_point deadline, timeout_listener* l, void* tag) {
    listener_ = l;
    timeout_tag_ = tag;
    // 0 means "not armed": a deadline at the clock's epoch is a nanosecond later.
    auto ns = std::max<std::int64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch()).count(), 1);
    deadline_ns_.store(ns, std::memory_order_release);
}

exchange::timeout_verdict exchange::time_out() {
    if (deadline_ns_.load(std::memory_order_acquire) == 0) return timeout_verdict::none;
    std::lock_guard lock(m_);
    // A finished response is the app's answer, however late the io side
    // takes it; a gone client needs none.
    if (done_ || aborted_) return timeout_verdict::none;
    bool answer = !output_started_;
    aborted_ = true;   // the app's later output is dropped, its waits fail
    file_.reset();
    io_waiting_ = false;
    finished_at_ = std::chrono::steady_clock::now();
    if (answer) status_.store(504, std::memory_order_relaxed);
    // The listener is told before timed_out() turns true, and the waker
    // after: an app side that finishes and then sees timed_out() knows the
    // listener has been told, and one that is woken sees timed_out().
    if (listener_) listener_->request_timed_out(*this, answer, timeout_tag_);
    timed_out_.store(true, std::memory_order_release);
    deadline_ns_.store(0, std::memory_order_relaxed);
    cv_.notify_all();
    wake_app_locked();
    return answer ? timeout_verdict::answer : timeout_verdict::close;
}

// ---- io side ------------------------------------------------------------

bool exchange::take(io_work& w) {
    std::lock_guard lock(m_);
    bool any = false;
    if (!out_.empty()) {
        in_flight_ = out_.size();
        w.out.swap(out_);
        any = true;
    }
    if (file_pending_ && file_) {
        w.file = std::move(file_);
        file_.reset();   // the io side owns the fd now
        any = true;
    }
    if (body_wanted_) {
        w.want_body = true;
        any = true;
    }
    if (done_) {
        w.done = true;
        w.keep_alive = keep_alive_;
        any = true;
    }
    if (!any) io_waiting_ = true;
    return any;
}

void exchange::output_written() {
    std::lock_guard lock(m_);
    in_flight_ = 0;
    cv_.notify_all();
    // A finished app waits for nothing more: waking an app on the event loop
    // here would cost a loop wakeup per response for nothing.
    if (!done_) wake_app_locked();
}

void exchange::file_sent(bool ok) {
    std::lock_guard lock(m_);
    file_pending_ = false;
    file_ok_ = ok;
    cv_.notify_all();
    if (!done_) wake_app_locked();
}

void exchange::abort() {
    std::lock_guard lock(m_);
    aborted_ = true;
    file_.reset();   // never sent now: close it without waiting for the last owner
    io_waiting_ = false;
    cv_.notify_all();
    wake_app_locked();
}

void record_metrics(metrics::registry& stats, std::uint16_t mount, exchange& ex,
                    std::chrono::steady_clock::time_point started, unsigned answered) {
    auto end = ex.finished_at();
    if (end == std::chrono::steady_clock::time_point{}) end = std::chrono::steady_clock::now();
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(end - started).count();
    if (ex.async_view()) {
        // A WSGI mount's Flask async view: its row is the mount's next
        // (see registry::add_mount); the request moves there.
        stats.request_moved(mount, mount + 1);
        ++mount;
    }
    unsigned status = answered ? answered : ex.status();
    std::uint64_t took = ns > 0 ? static_cast<std::uint64_t>(ns) : 0;
    stats.request_finished(mount, status, took, ex.body_received(), ex.body_bytes());
    if (mount != 0) {
        const request_head& h = ex.head();
        stats.route_finished(mount, h.method, h.routed.prefix, h.routed.rest(), status, took);
    }
}

} // namespace trestle::net
