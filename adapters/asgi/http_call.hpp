#pragma once
// One ASGI HTTP request on the loop thread: receive(), send() and the task's
// completion, over an exchange. Everything here runs on the loop thread with
// the GIL held, except the waker, which only posts.
#include "bridge/core/admission.hpp"
#include "bridge/net/response_writer.hpp"
#include "adapters/asgi/messages.hpp"
#include "bridge/python/ref.hpp"

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

namespace trestle::runtime { class loop_thread; }
namespace trestle::net { class app_port; struct server_context; }

namespace trestle::asgi {

class http_call;

// What the io side's waker holds: no Python object, so it may die anywhere.
struct mailbox {
    runtime::loop_thread* loop = nullptr;
    std::atomic<bool> queued{false};
    http_call* call = nullptr;   // loop thread only; null once the call is gone
};

class http_call {
public:
    http_call(std::shared_ptr<net::app_port> ex, runtime::loop_thread& loop, const net::server_context& ctx);
    ~http_call();

    PyObject* receive();                 // new reference or null
    PyObject* send(PyObject* message);   // new reference or null
    void on_done(PyObject* task);
    void on_io_event();
    // --timeout: the request may run `timeout` from now; then `task` (the
    // app's) is cancelled. The connection answers 504 or closes.
    void arm_timeout(py::ref task, std::chrono::milliseconds timeout);
    // Fails the request before the app ran (scope or call error).
    void fail_early();
    // The request's --limit-concurrency place, given back when the task ends.
    void hold(admission::place p) { place_ = std::move(p); }

private:
    py::ref read_message();              // null: would block (no exception)
    py::ref disconnect_message();
    PyObject* start_response(PyObject* message);
    PyObject* send_body(PyObject* message);
    PyObject* send_path(PyObject* message);   // http.response.pathsend
    PyObject* send_informational(PyObject* message);   // http.response.informational (103 Early Hints)
    PyObject* send_trailers(PyObject* message);        // http.response.trailers
    bool flush();                        // false: would block
    void complete_waiters();
    void cancel_for_timeout();
    std::string describe() const;

    std::shared_ptr<net::app_port> ex_;
    net::response_writer w_;
    std::shared_ptr<mailbox> mb_;
    py::borrowed loop_;                  // the loop thread's, which outlives every call
    send_state state_ = send_state::start;
    bool trailers_ = false;        // the start promised http.response.trailers
    std::string trailer_fields_;   // gathered until more_trailers is false
    bool body_done_ = false;
    bool disconnected_ = false;
    std::uint64_t body_read_ = 0;
    py::ref receive_waiter_;
    py::ref send_waiter_;
    py::ref task_;                       // set while --timeout may still cancel it
    std::chrono::milliseconds timeout_{0};
    admission::place place_;
};

// The Python-facing object (trestle.HTTPCall) owning an http_call.
py::ref new_call_object(std::unique_ptr<http_call> impl);
void init_call_type();
// Bound methods of a call object: receive, send, and the done callback.
py::ref bound_receive(PyObject* call);
py::ref bound_send(PyObject* call);
py::ref bound_done(PyObject* call);
http_call* impl_of(PyObject* call);

// Forgets a waiter the app has cancelled (asyncio.wait_for timing out), so
// the next receive()/send() is not taken for a concurrent one.
void drop_if_done(py::ref& fut);

// An awaitable that is already complete: `await` returns `value` at once,
// with no trip through the event loop.
py::ref done_awaitable(PyObject* value);
void init_done_type();

} // namespace trestle::asgi
