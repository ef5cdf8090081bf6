#pragma once
// The app side of one request: what a handler in adapters/ (WSGI on a pool
// thread, ASGI on the event loop, static files and proxies as coroutines on
// the io thread) sees of it. The request head, its body, the response's
// bytes with backpressure, the completion, and the facts the access log
// wants. Nothing here knows the connection or its protocol: the port's other
// side (protocol_port.hpp) is driven by the connection, and net::exchange
// (exchange.hpp) implements both.
//
// A handler holds its request as a std::shared_ptr<app_port> for as long as
// it runs; shared_from_this() gives a listener told with a reference (see
// timeout_listener) a share of it.
#include "bridge/net/file_job.hpp"
#include "bridge/net/request.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace trestle::net {

class app_port;

// Told when a request runs past its --timeout (see protocol_port::time_out).
// Set by the app side when it arms the timeout; `tag` is the app side's own.
class timeout_listener {
public:
    // Called on the io thread with the exchange's lock held, before the app
    // side can see app_port::timed_out(): only hand off, never call back in.
    // `answered`: nothing had been sent, so the client gets a 504.
    virtual void request_timed_out(app_port& ex, bool answered, void* tag) = 0;

protected:
    ~timeout_listener() = default;
};

// The app side may block in read, write and send_file: the callers in
// adapters/ release the GIL first. Every call is thread-safe.
class app_port : public std::enable_shared_from_this<app_port> {
public:
    virtual const request_head& head() const = 0;
    virtual const endpoint_info& endpoint() const = 0;
    // The connection's io thread: where coroutine handlers run.
    virtual const boost::asio::any_io_executor& io_executor() const = 0;

    // ---- body -------------------------------------------------------------
    // try_read never blocks and returns nullopt when it would. read blocks
    // until data, end of body (0) or failure (nullopt). A body spilled to a
    // file is read only by read(), which the callers run without the GIL:
    // try_read never waits on the disk.
    virtual std::optional<std::size_t> try_read(char* dst, std::size_t n) = 0;
    virtual std::optional<std::size_t> read(char* dst, std::size_t n) = 0;
    // The request is over for the app: every read still waiting returns
    // nullopt now, and so does every later one (threads the app left
    // reading must not wait on an exchange about to be freed).
    virtual void cancel_reads() = 0;
    // True once the whole body has been received and consumed.
    virtual bool body_consumed() = 0;
    // Asks the io side for more body without waiting for it (apps on an
    // event loop; see set_app_waker).
    virtual void request_body() = 0;
    // Why the body could not be read (413, 408, 400), or 0: what the
    // response should be if the app has not started one.
    virtual unsigned body_error_status() = 0;

    // ---- output -------------------------------------------------------------
    // try_write appends when it fits under the high-water mark; write blocks
    // until it fits. Both take the bytes out of `bytes` (leaving it empty)
    // when they succeed, and fail once the client is gone.
    enum class write_result { ok, would_block, gone };
    virtual write_result try_write(std::string& bytes) = 0;
    virtual bool write(std::string& bytes) = 0;
    // Sends a file region with no copy; blocks until sent. Takes the fd.
    virtual bool send_file(file_job job) = 0;
    // The same without waiting: the io side sends it after the output queued
    // so far and before the completion. Takes the fd.
    virtual void queue_file(file_job job) = 0;
    // The response is complete (or, with keep_alive false, must end the
    // connection); `last` holds its final bytes, taken like try_write takes
    // them, so the last write and the completion cost one lock and one
    // wakeup. No app-side call may follow.
    virtual void finish(bool keep_alive, std::string& last) = 0;
    virtual bool client_gone() = 0;
    // True once any response byte or file has been handed over (queued or
    // written directly): from then on no interim response may go out.
    virtual bool output_started() = 0;

    // An app that cannot block (ASGI) registers a waker instead: it is called,
    // from the io thread and with the exchange lock held, whenever a wait
    // could now make progress (body arrived, output drained, client gone).
    // It must only hand off (post to the loop), never call back in.
    virtual void set_app_waker(std::function<void()> waker) = 0;

    // ---- facts for the access log -------------------------------------------
    // The io side logs an aborted request while its app may still be setting
    // them, so each is published on its own.
    virtual void set_status(unsigned status) = 0;
    virtual void add_body_bytes(std::uint64_t n) = 0;
    // The response's header lines ("Name: value\r\n" each), kept only for an
    // access log format that shows them. Set at most once.
    virtual void set_response_head(std::string_view lines) = 0;
    // The request ran a Flask `async def` view (on the loop, through
    // trestle.flask): the metrics count it under the mount's `flask-async`
    // interface rather than `wsgi`.
    virtual void count_as_async_view() {}

    // ---- request timeout (--timeout) ------------------------------------------
    // Armed when the app starts on the request; handlers that never do
    // (static files, proxies) are never timed out. Once per request, before
    // the io side can see it; `l` (may be null) is told at the deadline.
    virtual void arm_timeout(std::chrono::steady_clock::time_point deadline, timeout_listener* l = nullptr,
                             void* tag = nullptr) = 0;
    // The connection cut this request at its deadline: from then on the app
    // side is treated as if the client had gone. Lock-free.
    virtual bool timed_out() const = 0;

protected:
    app_port() = default;
    app_port(const app_port&) = delete;
    app_port& operator=(const app_port&) = delete;
    ~app_port() = default;   // owners hold the implementation's shared_ptr
};

} // namespace trestle::net
