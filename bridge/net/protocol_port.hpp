#pragma once
// The protocol side of one request: what the connection that carries it (an
// HTTP/1.1 connection today, an HTTP/2 stream later, a test) drives, on its
// io thread. It takes what the app side produced (io_work), feeds the body
// in, reports what it wrote, and ends the request when the client leaves or
// the request runs past --timeout. The app side's port is app_port.hpp;
// net::exchange (exchange.hpp) implements both. The io side never blocks.
#include "bridge/net/body_buffer.hpp"
#include "bridge/net/file_job.hpp"
#include "bridge/net/request.hpp"

#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace trestle::net {

// What the io side must do after a wakeup.
struct io_work {
    std::string out;            // bytes to write, in order
    std::optional<file_job> file;
    bool want_body = false;     // the app waits for more request body
    bool done = false;          // the app has finished (after `out` and `file`)
    bool keep_alive = false;    // valid with done: the response allows reuse
};

class protocol_port;

// Told on the io thread, by the wake_queue, whenever the app side produced
// something the io side must act on (output, the completion, a wish for more
// body, the timeout). Without a driver (tests) the wakeup timer is cancelled
// instead. Set and cleared on the io thread only.
class exchange_driver {
public:
    virtual void exchange_ready(protocol_port& ex) = 0;

protected:
    ~exchange_driver() = default;
};

class protocol_port {
public:
    virtual const request_head& head() const = 0;
    virtual const endpoint_info& endpoint() const = 0;

    // ---- before the app runs --------------------------------------------------
    // The whole body, already read (small or preread bodies).
    virtual void preload_body(std::string body) = 0;
    // The whole body, gathered before the app ran, in an unlinked file.
    virtual void preload_body_file(body_file file) = 0;

    // ---- while the app runs ---------------------------------------------------
    // Takes pending work. Returns false (and arms the wakeup) if there is
    // none: the next thing the app side produces wakes the driver.
    virtual bool take(io_work& w) = 0;
    virtual void set_driver(exchange_driver* d) = 0;
    // What a pump without a driver waits on; the wakeup cancels it. Made
    // on first use: a connection that watches its socket instead (proxy,
    // ASGI) never needs it, and making a timer costs a service lookup.
    virtual boost::asio::steady_timer& wakeup_timer() = 0;
    // Ends a wait on the wakeup timer, if one was ever made.
    virtual void cancel_wakeup() = 0;
    // The bytes last taken are written: the app may write more.
    virtual void output_written() = 0;
    virtual void file_sent(bool ok) = 0;
    virtual void push_body(std::string& data, bool eof) = 0;
    // The body could not be read; `status` (413, 408, 400) is what the
    // response should be if the app has not started one.
    virtual void body_failed(unsigned status) = 0;
    // True once any response byte or file has been handed over: from then
    // on no interim response (100 Continue) may go out.
    virtual bool output_started() = 0;
    // The client has gone: fail every app-side wait.
    virtual void abort() = 0;

    // ---- request timeout (--timeout) ------------------------------------------
    // Lock-free: whether the deadline the app side armed has passed.
    virtual bool timeout_due(std::chrono::steady_clock::time_point now) const = 0;
    // At the deadline: what the connection must do. From here on the app
    // side is treated as if the client had gone (its output is dropped, its
    // waits fail), and its timeout listener and waker are told.
    enum class timeout_verdict {
        none,      // not armed, already finished (or gone, or timed out): nothing to do
        answer,    // nothing was sent: the connection answers 504 and closes
        close,     // the response had started: the connection closes
    };
    virtual timeout_verdict time_out() = 0;

    // ---- the access log ---------------------------------------------------------
    // When the app finished (the log's duration ends there). Safe for an
    // aborted request whose app may be finishing at the same moment, as are
    // the facts below, which the app side sets.
    virtual std::chrono::steady_clock::time_point finished_at() = 0;
    virtual unsigned status() const = 0;
    virtual std::uint64_t body_bytes() const = 0;
    virtual std::string_view response_head() const = 0;

protected:
    protocol_port() = default;
    protocol_port(const protocol_port&) = delete;
    protocol_port& operator=(const protocol_port&) = delete;
    ~protocol_port() = default;
};

} // namespace trestle::net
