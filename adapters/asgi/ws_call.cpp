#include "adapters/asgi/ws_call.hpp"

#include "adapters/asgi/messages.hpp"
#include "bridge/net/http_util.hpp"
#include "bridge/observability/log.hpp"
#include "bridge/python/c_type.hpp"
#include "bridge/python/call.hpp"
#include "bridge/python/interpreter.hpp"
#include "bridge/runtime/loop_thread.hpp"

#include <boost/beast/core/string.hpp>

#include <cstring>

namespace trestle::asgi {

namespace {

namespace names = py::names;

// message[key], or null when absent or None.
py::borrowed optional_item(PyObject* message, const char* key) {
    py::borrowed v = PyDict_GetItemString(message, key);
    return v == Py_None ? nullptr : v;
}

// An optional str field as UTF-8. False with TypeError (not a str) or
// UnicodeEncodeError (lone surrogates) set.
bool optional_str(PyObject* message, const char* key, const char* what, std::string& out) {
    py::borrowed v = optional_item(message, key);
    if (!v) return true;
    if (!PyUnicode_Check(v)) {
        PyErr_Format(PyExc_TypeError, "%s '%s' must be a str or None, not %.100s", what, key, Py_TYPE(v)->tp_name);
        return false;
    }
    Py_ssize_t n = 0;
    const char* s = PyUnicode_AsUTF8AndSize(v, &n);
    if (!s) return false;
    out.assign(s, static_cast<std::size_t>(n));
    return true;
}

// The subprotocols the client offered (Sec-WebSocket-Protocol, a comma list,
// possibly over several fields).
bool offered(const net::request_head& head, std::string_view sub) {
    for (auto& f : head.headers) {
        if (!boost::beast::iequals(f.name, "sec-websocket-protocol")) continue;
        std::string_view list = f.value;
        while (!list.empty()) {
            auto comma = list.find(',');
            std::string_view item = list.substr(0, comma);
            while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
            while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
            if (item == sub) return true;
            if (comma == std::string_view::npos) break;
            list.remove_prefix(comma + 1);
        }
    }
    return false;
}

// Fields the server writes itself in a 101 or a denial; an app's are
// dropped, as hop-by-hop fields are from an HTTP response.
bool server_owned(std::string_view n) {
    using boost::beast::iequals;
    return net::is_hop_by_hop(n) || iequals(n, "content-length") || iequals(n, "sec-websocket-accept") ||
           iequals(n, "sec-websocket-extensions");
}

// websocket.close's code and reason: an int the wire may carry (see
// net::sendable_close_code), 1000 when absent; a str of at most 123 bytes
// in UTF-8. False with TypeError, ValueError or OverflowError set.
bool parse_close(PyObject* message, net::ws_command& c) {
    c.code = 1000;
    if (py::borrowed code = optional_item(message, "code")) {
        if (!PyLong_Check(code)) {
            PyErr_Format(PyExc_TypeError, "websocket.close 'code' must be an int, not %.100s", Py_TYPE(code)->tp_name);
            return false;
        }
        long v = PyLong_AsLong(code);
        if (v == -1 && PyErr_Occurred()) return false;
        if (v < 0 || !net::sendable_close_code(static_cast<unsigned long>(v))) {
            PyErr_Format(PyExc_ValueError,
                         "websocket.close code %ld may not be sent (RFC 6455 7.4: 1000-1003, 1007-1014 or 3000-4999)", v);
            return false;
        }
        c.code = static_cast<std::uint16_t>(v);
    }
    if (!optional_str(message, "reason", "websocket.close", c.reason)) return false;
    if (c.reason.size() > net::max_close_reason) {
        PyErr_Format(PyExc_ValueError, "websocket.close 'reason' is %zu bytes in UTF-8; a close frame holds 123",
                     c.reason.size());
        return false;
    }
    return true;
}

void settle(py::ref& fut, PyObject* value, PyObject* exc_type = nullptr, const char* text = nullptr) {
    if (!fut) return;
    py::ref f = std::move(fut);
    py::ref done = py::call_method(f.get(), names::done);
    if (!done) {
        py::print_exception();
        return;
    }
    if (done.get() == Py_True) return;
    py::ref r;
    if (exc_type) {
        py::ref exc = py::ref::steal(PyObject_CallFunction(exc_type, "s", text));
        r = exc ? py::call_method(f.get(), names::set_exception, exc.get()) : py::ref{};
    } else {
        r = py::call_method(f.get(), names::set_result, value);
    }
    if (!r) py::print_exception();
}

} // namespace

ws_call::ws_call(std::shared_ptr<net::ws_channel> ch, runtime::loop_thread& loop)
    : ch_(std::move(ch)), mb_(std::make_shared<mailbox>()), loop_(loop.loop()) {
    mb_->loop = &loop;
    // The mailbox's `call` is typed for HTTP; WebSocket calls use a lambda of
    // their own instead, guarded by the same liveness rule.
    auto alive = std::make_shared<ws_call*>(this);
    alive_ = alive;
    ch_->set_app_waker([mb = mb_, alive] {
        if (mb->queued.exchange(true)) return;
        mb->loop->post([mb, alive] {
            mb->queued = false;
            if (*alive) (*alive)->on_io_event();
        });
    });
}

ws_call::~ws_call() {
    *alive_ = nullptr;
    if (state_ == state::connecting || state_ == state::open)
        ch_->command({net::ws_command::close, {}, {}, {}, 403, {}, 1011, {}});
}

py::ref ws_call::next_message() {
    if (!connect_delivered_) {
        connect_delivered_ = true;
        return py::ref::steal(Py_BuildValue("{s:s}", "type", "websocket.connect"));
    }
    if (auto f = ch_->pop_frame()) {
        PyObject* payload = f->text ? PyUnicode_DecodeUTF8(f->data.data(), static_cast<Py_ssize_t>(f->data.size()), "replace")
                                    : PyBytes_FromStringAndSize(f->data.data(), static_cast<Py_ssize_t>(f->data.size()));
        if (!payload) return {};
        py::ref p = py::ref::steal(payload);
        return py::ref::steal(Py_BuildValue("{s:s,s:O}", "type", "websocket.receive", f->text ? "text" : "bytes", p.get()));
    }
    if (auto code = ch_->closed_code()) {
        disconnect_delivered_ = true;
        if (state_ != state::closed) state_ = state::closed;
        return py::ref::steal(Py_BuildValue("{s:s,s:i}", "type", "websocket.disconnect", "code", static_cast<int>(*code)));
    }
    return {};
}

PyObject* ws_call::receive() {
    drop_if_done(receive_waiter_);
    if (receive_waiter_) {
        PyErr_SetString(PyExc_RuntimeError, "receive() called again before the previous call completed");
        return nullptr;
    }
    py::ref msg = next_message();
    if (msg) return done_awaitable(msg.get()).release();
    if (PyErr_Occurred()) return nullptr;
    receive_waiter_ = py::call_method(loop_, names::create_future);
    if (!receive_waiter_) return nullptr;
    return receive_waiter_.copy().release();   // the caller's; ours stays
}

// websocket.accept: `subprotocol` None (or "") or a token the client offered (RFC
// 6455 4.2.2; a client fails the connection on any other); `headers` as in
// http.response.start. A Sec-WebSocket-Protocol among the headers counts as
// the subprotocol; the fields the handshake owns are dropped.
bool ws_call::parse_accept(PyObject* message, net::ws_command& c) {
    if (!optional_str(message, "subprotocol", "websocket.accept", c.subprotocol)) return false;
    // "" means none, as in uvicorn, which leaves the field out then.
    bool has_sub = !c.subprotocol.empty();
    PyObject* headers = PyDict_GetItemString(message, "headers");   // borrowed
    bool ok = for_each_header(headers, [&](std::string_view n, std::string_view v, PyObject* item) {
        if (boost::beast::iequals(n, "sec-websocket-protocol")) {
            if (has_sub && v != c.subprotocol) {
                PyErr_Format(PyExc_ValueError, "header %R contradicts websocket.accept's 'subprotocol'", item);
                return false;
            }
            c.subprotocol.assign(v);
            has_sub = true;
            return true;
        }
        if (!server_owned(n)) c.headers.emplace_back(std::string(n), std::string(v));
        return true;
    });
    if (!ok) return false;
    if (has_sub && (!net::is_token(c.subprotocol) || !offered(ch_->head(), c.subprotocol))) {
        PyErr_Format(PyExc_ValueError,
                     "websocket.accept subprotocol '%.200s' is not one the client offered in Sec-WebSocket-Protocol",
                     c.subprotocol.c_str());
        return false;
    }
    return true;
}

PyObject* ws_call::denial(PyObject* message, const std::string& type) {
    if (type == "websocket.http.response.start") {
        if (state_ != state::connecting) {
            PyErr_SetString(PyExc_RuntimeError, "websocket.http.response.start is only allowed before accept");
            return nullptr;
        }
        auto status = parse_status(message, "websocket.http.response.start");
        if (!status) return nullptr;
        net::ws_command d{net::ws_command::deny, {}, {}, {}, *status, {}, 1000, {}};
        PyObject* headers = PyDict_GetItemString(message, "headers");   // borrowed
        bool ok = for_each_header(headers, [&](std::string_view n, std::string_view v, PyObject*) {
            if (!server_owned(n)) d.headers.emplace_back(std::string(n), std::string(v));
            return true;
        });
        if (!ok) return nullptr;
        denial_ = std::move(d);
        state_ = state::denying;
        return done_awaitable(Py_None).release();
    }
    // websocket.http.response.body
    if (state_ != state::denying) {
        PyErr_Format(PyExc_RuntimeError, "Expected ASGI message 'websocket.http.response.start', but got '%s'.", type.c_str());
        return nullptr;
    }
    if (py::borrowed body = optional_item(message, "body")) {
        Py_buffer buf{};
        std::string_view data;
        if (!bytes_view(body, buf, data)) return nullptr;
        denial_.body.append(data);
        release_view(buf);
    }
    PyObject* more = PyDict_GetItemString(message, "more_body");   // borrowed
    int more_body = more ? PyObject_IsTrue(more) : 0;
    if (more_body < 0) return nullptr;   // bool() raised: the app's error
    if (!more_body) {
        ch_->command(std::move(denial_));
        state_ = state::closed;
    }
    return done_awaitable(Py_None).release();
}

PyObject* ws_call::send(PyObject* message) {
    std::string_view type_view = message_type(message);
    if (type_view.empty()) return nullptr;
    std::string type(type_view);
    drop_if_done(send_waiter_);
    if (send_waiter_) {
        PyErr_SetString(PyExc_RuntimeError, "send() called again before the previous send completed");
        return nullptr;
    }
    if (type == "websocket.http.response.start" || type == "websocket.http.response.body") return denial(message, type);
    if (state_ == state::closed || ch_->closed_code()) {
        if (disconnect_delivered_ || ch_->closed_code()) {
            PyErr_SetString(PyExc_OSError, "the WebSocket is closed");
            return nullptr;
        }
        PyErr_Format(PyExc_RuntimeError, "Unexpected ASGI message '%s', after sending 'websocket.close'.", type.c_str());
        return nullptr;
    }
    if (state_ == state::connecting) {
        if (type == "websocket.accept") {
            net::ws_command c{net::ws_command::accept, {}, {}, {}, 403, {}, 1000, {}};
            if (!parse_accept(message, c)) return nullptr;
            ch_->command(std::move(c));
            state_ = state::open;
            return done_awaitable(Py_None).release();
        }
        if (type == "websocket.close") {
            net::ws_command c{net::ws_command::close, {}, {}, {}, 403, {}, 1000, {}};
            if (!parse_close(message, c)) return nullptr;   // the same rules as after the accept
            ch_->command({net::ws_command::deny, {}, {}, {}, 403, {}, 1000, {}});
            state_ = state::closed;
            return done_awaitable(Py_None).release();
        }
        PyErr_Format(PyExc_RuntimeError, "Expected ASGI message 'websocket.accept' or 'websocket.close', but got '%s'.",
                     type.c_str());
        return nullptr;
    }
    if (state_ == state::denying) {
        PyErr_Format(PyExc_RuntimeError, "Expected ASGI message 'websocket.http.response.body', but got '%s'.", type.c_str());
        return nullptr;
    }
    if (type == "websocket.send") {
        net::ws_command c{net::ws_command::send, {}, {}, {}, 403, {}, 1000, {}};
        PyObject* text = PyDict_GetItemString(message, "text");    // borrowed
        PyObject* bytes = PyDict_GetItemString(message, "bytes");  // borrowed
        if (text && text != Py_None) {
            Py_ssize_t n;
            const char* s = PyUnicode_Check(text) ? PyUnicode_AsUTF8AndSize(text, &n) : nullptr;
            if (!s) {
                if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "websocket.send 'text' must be a str");
                return nullptr;
            }
            c.frame = {true, std::string(s, static_cast<std::size_t>(n))};
        } else if (bytes && bytes != Py_None && PyBytes_Check(bytes)) {
            c.frame = {false, std::string(PyBytes_AS_STRING(bytes), static_cast<std::size_t>(PyBytes_GET_SIZE(bytes)))};
        } else {
            PyErr_SetString(PyExc_TypeError, "websocket.send needs 'text' (str) or 'bytes' (bytes)");
            return nullptr;
        }
        if (ch_->command(std::move(c))) return done_awaitable(Py_None).release();
        // Above the high-water mark: suspend until the socket drains.
        send_waiter_ = py::call_method(loop_, names::create_future);
        if (!send_waiter_) return nullptr;
        return send_waiter_.copy().release();   // the caller's; ours stays
    }
    if (type == "websocket.close") {
        net::ws_command c{net::ws_command::close, {}, {}, {}, 403, {}, 1000, {}};
        if (!parse_close(message, c)) return nullptr;
        ch_->command(std::move(c));
        state_ = state::closed;
        return done_awaitable(Py_None).release();
    }
    PyErr_Format(PyExc_RuntimeError, "Expected ASGI message 'websocket.send' or 'websocket.close', but got '%s'.",
                 type.c_str());
    return nullptr;
}

void ws_call::on_io_event() {
    if (receive_waiter_) {
        py::ref msg = next_message();
        if (msg) settle(receive_waiter_, msg.get());
        else if (PyErr_Occurred()) py::print_exception();
    }
    if (send_waiter_) {
        if (ch_->closed_code()) settle(send_waiter_, nullptr, PyExc_OSError, "the WebSocket is closed");
        else if (ch_->writable()) settle(send_waiter_, Py_None);
    }
}

void ws_call::on_done(PyObject* task) {
    place_.release();
    py::ref cancelled = py::call_method(task, names::cancelled);
    py::ref exc = cancelled && cancelled.get() == Py_False
                      ? py::call_method(task, names::exception)
                      : py::ref{};
    if (!cancelled) PyErr_Clear();
    bool failed = exc && exc.get() != Py_None;
    if (failed && !ch_->closed_code()) {
        log::error("exception in ASGI websocket app for " + ch_->head().target + ":");
        PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.get())), exc.get());
        py::print_exception();
    }
    if (state_ == state::connecting || state_ == state::denying) {
        // Never accepted: the handshake is refused (a 500 if the app failed).
        ch_->command({net::ws_command::deny, {}, {}, {}, failed ? 500u : 403u, {}, 1000, {}});
    } else if (state_ == state::open) {
        ch_->command({net::ws_command::close, {}, {}, {}, 403, {}, static_cast<std::uint16_t>(failed ? 1011 : 1000), {}});
    }
    state_ = state::closed;
    settle(receive_waiter_, nullptr, PyExc_RuntimeError, "the app has finished");
    settle(send_waiter_, nullptr, PyExc_OSError, "the WebSocket is closed");
}

// ---- the Python object ------------------------------------------------------

namespace {

struct owned_ws_call {
    std::unique_ptr<ws_call> impl;
};
using ws_type = py::c_type<owned_ws_call>;

ws_call* wimpl(PyObject* self) { return ws_type::of(self).impl.get(); }
PyObject* ws_receive(PyObject* self, PyObject*) { return wimpl(self)->receive(); }
PyObject* ws_send(PyObject* self, PyObject* m) { return wimpl(self)->send(m); }
PyObject* ws_done(PyObject* self, PyObject* task) {
    wimpl(self)->on_done(task);
    Py_RETURN_NONE;
}

PyMethodDef ws_receive_def = {"receive", ws_receive, METH_NOARGS, "ASGI receive()."};
PyMethodDef ws_send_def = {"send", ws_send, METH_O, "ASGI send(message)."};
PyMethodDef ws_done_def = {"_done", ws_done, METH_O, "Task completion."};

} // namespace

void init_ws_call_type() {
    ws_type::define("trestle.WebSocketCall", {{Py_tp_doc, const_cast<char*>("One ASGI WebSocket connection.")}});
}

py::ref new_ws_call_object(std::unique_ptr<ws_call> p) { return ws_type::make(std::move(p)); }

py::ref ws_bound(PyObject* call, const char* which) {
    PyMethodDef* def = std::strcmp(which, "receive") == 0 ? &ws_receive_def
                       : std::strcmp(which, "send") == 0  ? &ws_send_def
                                                          : &ws_done_def;
    return py::ref::steal(PyCFunction_New(def, call));
}

} // namespace trestle::asgi
