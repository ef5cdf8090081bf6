#pragma once
// The state one request shares between its connection (an io thread) and the
// app that answers it (a pool thread, the event loop, or a coroutine on the io
// thread). The app side may block: the callers in adapters/ release the GIL
// first. The io side never blocks. The exchange knows no socket: whatever the
// app side produces reaches the connection one way, through the io thread's
// wake_queue, and only the connection writes to its socket.
#include "bridge/net/body_buffer.hpp"
#include "bridge/net/request.hpp"
#include "bridge/net/unique_fd.hpp"

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

namespace trestle::net {

// A file the io side sends with sendfile(2). The job owns the descriptor
// wherever it is (the exchange's queue, io_work, a pump that returns early),
// so whoever drops the job closes it.
struct file_job {
    unique_fd fd;
    std::uint64_t offset = 0;
    std::uint64_t count = 0;
};

// What the io side must do after a wakeup.
struct io_work {
    std::string out;            // bytes to write, in order
    std::optional<file_job> file;
    bool want_body = false;     // the app waits for more request body
    bool done = false;          // the app has finished (after `out` and `file`)
    bool keep_alive = false;    // valid with done: the response allows reuse
};

class exchange;

// Told when a request runs past its --timeout (see exchange::time_out). Set
// by the app side when it arms the timeout; `tag` is the app side's own.
class timeout_listener {
public:
    // Called on the io thread with the exchange's lock held, before the app
    // side can see exchange::timed_out(): only hand off, never call back in.
    // `answered`: nothing had been sent, so the client gets a 504.
    virtual void request_timed_out(exchange& ex, bool answered, void* tag) = 0;

protected:
    ~timeout_listener() = default;
};

// The protocol side of an exchange: an HTTP/1.1 connection (an HTTP/2
// stream later). Told on the io thread, by the wake_queue, whenever the app
// side produced something the io side must act on (output, the completion, a
// wish for more body, the timeout). Without a driver (tests) the wakeup
// timer is cancelled instead. Set and cleared on the io thread only.
class exchange_driver {
public:
    virtual void exchange_ready(exchange& ex) = 0;

protected:
    ~exchange_driver() = default;
};

class wake_queue;

class exchange : public std::enable_shared_from_this<exchange> {
public:
    exchange(wake_queue& io, request_head head, const endpoint_info& ep, std::size_t output_hwm);
    ~exchange();

    const request_head& head() const { return head_; }
    const boost::asio::any_io_executor& io_executor() const;
    const endpoint_info& endpoint() const { return endpoint_; }

    // ---- app side -------------------------------------------------------
    // Body reads: try_read never blocks and returns nullopt when it would.
    // read blocks until data, end of body (0) or failure (nullopt). A body
    // spilled to a file (preload_body_file) is read only by read(), which
    // the callers run without the GIL: try_read never waits on the disk.
    std::optional<std::size_t> try_read(char* dst, std::size_t n);
    std::optional<std::size_t> read(char* dst, std::size_t n);
    // The request is over for the app: every read still waiting returns
    // nullopt now, and so does every later one (threads the app left
    // reading must not wait on an exchange about to be freed).
    void cancel_reads();
    // True once the whole body has been received and consumed.
    bool body_consumed();

    // Output: try_write appends when it fits under the high-water mark.
    // write blocks until it fits. Both return false if the client is gone.
    enum class write_result { ok, would_block, gone };
    // Both take the bytes out of `bytes` (leaving it empty) when they succeed.
    write_result try_write(std::string& bytes);
    bool write(std::string& bytes);
    // Sends a file region with no copy; blocks until sent. Takes the fd.
    bool send_file(file_job job);
    // The same without waiting: the io side sends it after the output queued
    // so far and before the completion. Takes the fd.
    void queue_file(file_job job);
    // The response is complete (or, with keep_alive false, must end the
    // connection); `last` holds its final bytes, taken like try_write takes
    // them, so the last write and the completion cost one lock and one
    // wakeup. No app-side call may follow.
    void finish(bool keep_alive, std::string& last);
    bool client_gone();
    // True once any response byte or file has been handed over (queued or
    // written directly): from then on no interim response may go out.
    bool output_started();

    // ---- app side on an event loop ---------------------------------------
    // An app that cannot block (ASGI) registers a waker instead: it is called,
    // from the io thread and with the exchange lock held, whenever a wait
    // could now make progress (body arrived, output drained, client gone).
    // It must only hand off (post to the loop), never call back in.
    void set_app_waker(std::function<void()> waker);
    // Asks the io side for more body without waiting for it.
    void request_body();

    // Facts for the access log, set by the app side. Atomic: the io side
    // logs an aborted exchange while its app may still be writing them.
    void set_status(unsigned status) { status_.store(status, std::memory_order_relaxed); }
    unsigned status() const { return status_.load(std::memory_order_relaxed); }
    void add_body_bytes(std::uint64_t n) { body_bytes_.fetch_add(n, std::memory_order_relaxed); }
    std::uint64_t body_bytes() const { return body_bytes_.load(std::memory_order_relaxed); }
    // The response's header lines ("Name: value\r\n" each), kept only for an
    // access log format that shows them. Set at most once; published with
    // release, so the io side may read it while an aborted app runs on.
    void set_response_head(std::string_view lines) {
        if (response_head_set_.load(std::memory_order_relaxed)) return;
        response_head_.assign(lines);
        response_head_set_.store(true, std::memory_order_release);
    }
    std::string_view response_head() const {
        return response_head_set_.load(std::memory_order_acquire) ? std::string_view(response_head_) : std::string_view();
    }

    // ---- request timeout (--timeout) --------------------------------------
    // The app side arms it when the app starts on the request; handlers that
    // never do (static files, proxies) are never timed out. Once per request,
    // before the io side can see it; `l` (may be null) is told at the deadline.
    void arm_timeout(std::chrono::steady_clock::time_point deadline, timeout_listener* l = nullptr,
                     void* tag = nullptr);
    // io side, lock-free: whether the armed deadline has passed.
    bool timeout_due(std::chrono::steady_clock::time_point now) const {
        auto d = deadline_ns_.load(std::memory_order_acquire);
        return d != 0 && std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count() >= d;
    }
    // io side, at the deadline: what the connection must do. From here on
    // the app side is treated as if the client had gone (its output is
    // dropped, its waits fail), and the listener and the waker are told.
    enum class timeout_verdict {
        none,      // not armed, already finished (or gone, or timed out): nothing to do
        answer,    // nothing was sent: the connection answers 504 and closes
        close,     // the response had started: the connection closes
    };
    timeout_verdict time_out();
    // Any side: time_out() cut this request. Lock-free.
    bool timed_out() const { return timed_out_.load(std::memory_order_acquire); }

    // ---- io side --------------------------------------------------------
    // Takes pending work. Returns false (and arms the wakeup) if there is
    // none: the next thing the app side produces wakes the driver.
    bool take(io_work& w);
    void set_driver(exchange_driver* d) { driver_ = d; }
    // Called by the wake_queue on the io thread.
    void io_wake();
    // When finish() was called (the access log's duration ends there).
    // Under the lock: the io side reads it for an aborted exchange whose app
    // may be finishing at the same moment.
    std::chrono::steady_clock::time_point finished_at();
    boost::asio::steady_timer& wakeup_timer() { return wakeup_; }
    void output_written();
    void push_body(std::string& data, bool eof);
    // The body could not be read; `status` (413, 408, 400) is what the
    // response should be if the app has not started one.
    void body_failed(unsigned status);
    unsigned body_error_status();
    void file_sent(bool ok);
    void abort();                   // the client has gone: fail every app-side wait
    void preload_body(std::string body);
    // The whole body, gathered before the app ran, in an unlinked file.
    void preload_body_file(body_file file);

private:
    void wake_io_locked();
    void wake_app_locked();
    // Copies buffered body bytes; 0 at end of body, nullopt when none yet.
    std::optional<std::size_t> copy_body_locked(char* dst, std::size_t n);

    request_head head_;
    endpoint_info endpoint_;
    wake_queue& io_;
    boost::asio::steady_timer wakeup_;
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
    std::string response_head_;
    std::atomic<bool> response_head_set_{false};
};

} // namespace trestle::net
