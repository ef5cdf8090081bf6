#pragma once
// The state one request shares between its connection (an io thread) and the
// app that answers it (a pool thread, the event loop, or a coroutine on the io
// thread). Each side sees it through its own port: the app side through
// app_port, the connection through protocol_port. Only the code that creates
// exchanges (the connection, tests) names this class. The app side may block:
// the callers in adapters/ release the GIL first. The io side never blocks.
// The exchange knows no socket: whatever the app side produces reaches the
// connection one way, through the io thread's wake_queue, and only the
// connection writes to its socket.
#include "bridge/net/app_port.hpp"
#include "bridge/net/body_buffer.hpp"
#include "bridge/net/protocol_port.hpp"
#include "bridge/net/request.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace trestle::metrics { class registry; }

namespace trestle::net {

class wake_queue;

// Final, so calls through a known exchange skip the ports' virtual dispatch.
class exchange final : public app_port, public protocol_port {
public:
    exchange(wake_queue& io, request_head head, const endpoint_info& ep, std::size_t output_hwm);
    ~exchange();

    // ---- both sides -----------------------------------------------------
    const request_head& head() const override { return head_; }
    const endpoint_info& endpoint() const override { return endpoint_; }
    bool output_started() override;

    // ---- app side (app_port) ----------------------------------------------
    const boost::asio::any_io_executor& io_executor() const override;
    std::optional<std::size_t> try_read(char* dst, std::size_t n) override;
    std::optional<std::size_t> read(char* dst, std::size_t n) override;
    void cancel_reads() override;
    bool body_consumed() override;
    void request_body() override;
    unsigned body_error_status() override;
    write_result try_write(std::string& bytes) override;
    bool write(std::string& bytes) override;
    bool send_file(file_job job) override;
    void queue_file(file_job job) override;
    void finish(bool keep_alive, std::string& last) override;
    bool client_gone() override;
    void set_app_waker(std::function<void()> waker) override;

    // Facts for the access log, set by the app side. Atomic: the io side
    // logs an aborted exchange while its app may still be writing them.
    void set_status(unsigned status) override { status_.store(status, std::memory_order_relaxed); }
    void add_body_bytes(std::uint64_t n) override { body_bytes_.fetch_add(n, std::memory_order_relaxed); }
    // Set at most once; published with release, so the io side may read it
    // while an aborted app runs on.
    void count_as_async_view() override { async_view_.store(true, std::memory_order_relaxed); }
    bool async_view() const { return async_view_.load(std::memory_order_relaxed); }
    void set_response_head(std::string_view lines) override {
        if (response_head_set_.load(std::memory_order_relaxed)) return;
        response_head_.assign(lines);
        response_head_set_.store(true, std::memory_order_release);
    }

    void arm_timeout(std::chrono::steady_clock::time_point deadline, timeout_listener* l = nullptr,
                     void* tag = nullptr) override;
    bool timed_out() const override { return timed_out_.load(std::memory_order_acquire); }

    // ---- io side (protocol_port) ------------------------------------------
    void preload_body(std::string body) override;
    void preload_body_file(body_file file) override;
    bool take(io_work& w) override;
    void set_driver(exchange_driver* d) override { driver_ = d; }
    boost::asio::steady_timer& wakeup_timer() override;
    void cancel_wakeup() override {
        if (wakeup_) wakeup_->cancel();
    }
    void output_written() override;
    void file_sent(bool ok) override;
    void push_body(std::string& data, bool eof) override;
    void body_failed(unsigned status) override;
    void abort() override;

    bool timeout_due(std::chrono::steady_clock::time_point now) const override {
        auto d = deadline_ns_.load(std::memory_order_acquire);
        return d != 0 && std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count() >= d;
    }
    timeout_verdict time_out() override;

    // Under the lock: the io side reads it for an aborted exchange whose app
    // may be finishing at the same moment.
    std::chrono::steady_clock::time_point finished_at() override;
    unsigned status() const override { return status_.load(std::memory_order_relaxed); }
    std::uint64_t body_bytes() const override { return body_bytes_.load(std::memory_order_relaxed); }
    // Request body bytes given to the app (io side only).
    std::uint64_t body_received() const { return body_received_; }
    std::string_view response_head() const override {
        return response_head_set_.load(std::memory_order_acquire) ? std::string_view(response_head_) : std::string_view();
    }

private:
    // The wakeup pushed to the wake_queue comes back here, on the io thread.
    // Not on either port: only the queue calls it, and the protocol side
    // must never (it would call its own driver back).
    friend class wake_queue;
    void io_wake();

    void wake_io_locked();
    void wake_app_locked();
    // Copies buffered body bytes; 0 at end of body, nullopt when none yet.
    std::optional<std::size_t> copy_body_locked(char* dst, std::size_t n);

    request_head head_;
    endpoint_info endpoint_;
    wake_queue& io_;
    std::optional<boost::asio::steady_timer> wakeup_;   // io thread only
    std::size_t hwm_;

    std::mutex m_;
    std::condition_variable cv_;
    bool io_waiting_ = false;
    exchange_driver* driver_ = nullptr;   // io thread only
    std::chrono::steady_clock::time_point finished_at_{};
    std::function<void()> app_waker_;
    bool aborted_ = false;
    // body: io -> app
    std::string body_;
    std::size_t body_pos_ = 0;
    bool body_eof_ = false;
    bool body_failed_ = false;
    unsigned body_error_status_ = 0;
    bool body_wanted_ = false;
    bool reads_cancelled_ = false;
    body_file body_file_;            // set before the app runs; read with pread
    std::uint64_t body_file_pos_ = 0;
    // output: app -> io
    std::string out_;
    std::size_t in_flight_ = 0;
    std::optional<file_job> file_;
    bool file_pending_ = false;
    bool file_ok_ = false;
    bool done_ = false;
    bool keep_alive_ = false;
    bool output_started_ = false;

    // --timeout: deadline_ns_ (steady clock, 0: not armed) is stored last
    // with release, so listener_ and tag_ are set once it is seen.
    std::atomic<std::int64_t> deadline_ns_{0};
    timeout_listener* listener_ = nullptr;
    void* timeout_tag_ = nullptr;
    std::atomic<bool> timed_out_{false};

    std::atomic<unsigned> status_{0};
    std::atomic<std::uint64_t> body_bytes_{0};
    std::uint64_t body_received_ = 0;   // written and read on the io side only
    std::string response_head_;
    std::atomic<bool> response_head_set_{false};
    std::atomic<bool> async_view_{false};
};

// Counts a finished exchange in the metrics: its status (or `answered`,
// the server's own answer, such as a 504), its time from `started` to the
// app's end (or now), and its bytes both ways.
void record_metrics(metrics::registry& stats, std::uint16_t mount, exchange& ex,
                    std::chrono::steady_clock::time_point started, unsigned answered = 0);

} // namespace trestle::net
