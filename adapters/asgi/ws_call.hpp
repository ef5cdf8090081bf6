#pragma once
// One ASGI WebSocket connection on the loop thread (asgiref specs/www.rst,
// "WebSocket"): websocket.connect, accept or close (403) or the
// websocket.http.response denial, frames both ways, disconnect with the code.
#include "adapters/asgi/http_call.hpp"
#include "bridge/net/ws_channel.hpp"

namespace trestle::asgi {

class ws_call {
public:
    ws_call(std::shared_ptr<net::ws_channel> ch, runtime::loop_thread& loop);
    ~ws_call();

    PyObject* receive();
    PyObject* send(PyObject* message);
    void on_done(PyObject* task);
    void on_io_event();
    // The session's --limit-concurrency place, given back when the task ends.
    void hold(admission::place p) { place_ = std::move(p); }

private:
    py::ref next_message();   // null: nothing yet (no exception)
    PyObject* denial(PyObject* message, const std::string& type);
    bool parse_accept(PyObject* message, net::ws_command& c);

    std::shared_ptr<net::ws_channel> ch_;
    std::shared_ptr<mailbox> mb_;
    std::shared_ptr<ws_call*> alive_;   // cleared on destruction; posted work checks it
    py::borrowed loop_;   // the loop thread's, which outlives every call
    enum class state { connecting, open, denying, closed } state_ = state::connecting;
    bool connect_delivered_ = false;
    bool disconnect_delivered_ = false;
    net::ws_command denial_;
    py::ref receive_waiter_;
    py::ref send_waiter_;
    admission::place place_;
};

py::ref new_ws_call_object(std::unique_ptr<ws_call> impl);
void init_ws_call_type();
py::ref ws_bound(PyObject* call, const char* which);   // "receive", "send", "_done"

} // namespace trestle::asgi
