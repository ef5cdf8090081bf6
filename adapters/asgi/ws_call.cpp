#include "adapters/asgi/ws_call.hpp"

#include "bridge/observability/log.hpp"
#include "bridge/python/call.hpp"
#include "bridge/python/interpreter.hpp"
#include "bridge/runtime/loop_thread.hpp"

#include <cstring>

namespace trestle::asgi {

namespace {

// Method names, interned once (see bridge/python/call.hpp).
py::name n_done{"done"}, n_set_result{"set_result"}, n_set_exception{"set_exception"},
    n_create_future{"create_future"}, n_cancelled{"cancelled"}, n_exception{"exception"};

std::string str_item(PyObject* message, const char* key) {
    PyObject* v = PyDict_GetItemString(message, key);   // borrowed
    if (!v || v == Py_None || !PyUnicode_Check(v)) return {};
    const char* s = PyUnicode_AsUTF8(v);
    return s ? s : "";
}

// Headers as [[bytes, bytes], ...] into name/value strings.
bool header_list(PyObject* message, std::vector<std::pair<std::string, std::string>>& out) {
    PyObject* headers = PyDict_GetItemString(message, "headers");   // borrowed
    if (!headers || headers == Py_None) return true;
    py::ref it = py::ref::steal(PyObject_GetIter(headers));
    if (!it) return false;
    while (py::ref item = py::ref::steal(PyIter_Next(it.get()))) {
        py::ref pair = py::ref::steal(PySequence_Fast(item.get(), "each header must be a [name, value] pair"));
        if (!pair || PySequence_Fast_GET_SIZE(pair.get()) != 2) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "each header must be a [name, value] pair");
            return false;
        }
        PyObject* n = PySequence_Fast_GET_ITEM(pair.get(), 0);
        PyObject* v = PySequence_Fast_GET_ITEM(pair.get(), 1);
        if (!PyBytes_Check(n) || !PyBytes_Check(v)) {
            PyErr_SetString(PyExc_TypeError, "header names and values must be bytes");
            return false;
        }
        std::string name(PyBytes_AS_STRING(n), static_cast<std::size_t>(PyBytes_GET_SIZE(n)));
        std::string value(PyBytes_AS_STRING(v), static_cast<std::size_t>(PyBytes_GET_SIZE(v)));
        if (name.find_first_of("\r\n: ") != std::string::npos || value.find_first_of(std::string("\r\n\0", 3)) != std::string::npos) {
            PyErr_Format(PyExc_ValueError, "invalid header %R", item.get());
            return false;
        }
        out.emplace_back(std::move(name), std::move(value));
    }
    return !PyErr_Occurred();
}

void settle(py::ref& fut, PyObject* value, PyObject* exc_type = nullptr, const char* text = nullptr) {
    if (!fut) return;
    py::ref f = std::move(fut);
    py::ref done = py::call_method(f.get(), n_done);
    if (!done) {
        py::print_exception();
        return;
    }
    if (done.get() == Py_True) return;
    py::ref r;
    if (exc_type) {
        py::ref exc = py::ref::steal(PyObject_CallFunction(exc_type, "s", text));
        r = exc ? py::call_method(f.get(), n_set_exception, exc.get()) : py::ref{};
    } else {
        r = py::call_method(f.get(), n_set_result, value);
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
    receive_waiter_ = py::call_method(loop_, n_create_future);
    if (!receive_waiter_) return nullptr;
    Py_INCREF(receive_waiter_.get());
    return receive_waiter_.get();
}

PyObject* ws_call::denial(PyObject* message, const std::string& type) {
    if (type == "websocket.http.response.start") {
        if (state_ != state::connecting) {
            PyErr_SetString(PyExc_RuntimeError, "websocket.http.response.start is only allowed before accept");
            return nullptr;
        }
        PyObject* st = PyDict_GetItemString(message, "status");   // borrowed
        if (!st || !PyLong_Check(st)) {
            PyErr_SetString(PyExc_TypeError, "websocket.http.response.start needs an int 'status'");
            return nullptr;
        }
        denial_ = {net::ws_command::deny, {}, {}, {}, static_cast<unsigned>(PyLong_AsLong(st)), {}, 1000, {}};
        if (!header_list(message, denial_.headers)) return nullptr;
        state_ = state::denying;
        return done_awaitable(Py_None).release();
    }
    // websocket.http.response.body
    if (state_ != state::denying) {
        PyErr_Format(PyExc_RuntimeError, "Expected ASGI message 'websocket.http.response.start', but got '%s'.", type.c_str());
        return nullptr;
    }
    PyObject* body = PyDict_GetItemString(message, "body");   // borrowed
    if (body && PyBytes_Check(body)) denial_.body.append(PyBytes_AS_STRING(body), static_cast<std::size_t>(PyBytes_GET_SIZE(body)));
    PyObject* more = PyDict_GetItemString(message, "more_body");   // borrowed
    if (!more || PyObject_IsTrue(more) != 1) {
        ch_->command(std::move(denial_));
        state_ = state::closed;
    }
    return done_awaitable(Py_None).release();
}

PyObject* ws_call::send(PyObject* message) {
    if (!PyDict_Check(message)) {
        PyErr_SetString(PyExc_TypeError, "ASGI messages must be dicts");
        return nullptr;
    }
    std::string type = str_item(message, "type");
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
            net::ws_command c{net::ws_command::accept, {}, str_item(message, "subprotocol"), {}, 403, {}, 1000, {}};
            if (!header_list(message, c.headers)) return nullptr;
            ch_->command(std::move(c));
            state_ = state::open;
            return done_awaitable(Py_None).release();
        }
        if (type == "websocket.close") {
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
        send_waiter_ = py::call_method(loop_, n_create_future);
        if (!send_waiter_) return nullptr;
        Py_INCREF(send_waiter_.get());
        return send_waiter_.get();
    }
    if (type == "websocket.close") {
        PyObject* code = PyDict_GetItemString(message, "code");   // borrowed
        long c = code && PyLong_Check(code) ? PyLong_AsLong(code) : 1000;
        ch_->command({net::ws_command::close, {}, {}, {}, 403, {}, static_cast<std::uint16_t>(c), str_item(message, "reason")});
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
    py::ref cancelled = py::call_method(task, n_cancelled);
    py::ref exc = cancelled && cancelled.get() == Py_False
                      ? py::call_method(task, n_exception)
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

struct ws_call_object {
    PyObject_HEAD
    ws_call* impl;   // owned
};

PyTypeObject* ws_type = nullptr;   // owned for the process

ws_call* wimpl(PyObject* self) { return reinterpret_cast<ws_call_object*>(self)->impl; }
PyObject* ws_receive(PyObject* self, PyObject*) { return wimpl(self)->receive(); }
PyObject* ws_send(PyObject* self, PyObject* m) { return wimpl(self)->send(m); }
PyObject* ws_done(PyObject* self, PyObject* task) {
    wimpl(self)->on_done(task);
    Py_RETURN_NONE;
}
void ws_dealloc(PyObject* self) {
    delete wimpl(self);
    PyTypeObject* tp = Py_TYPE(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

PyMethodDef ws_receive_def = {"receive", ws_receive, METH_NOARGS, "ASGI receive()."};
PyMethodDef ws_send_def = {"send", ws_send, METH_O, "ASGI send(message)."};
PyMethodDef ws_done_def = {"_done", ws_done, METH_O, "Task completion."};

} // namespace

void init_ws_call_type() {
    static PyType_Slot slots[] = {
        {Py_tp_dealloc, reinterpret_cast<void*>(ws_dealloc)},
        {Py_tp_doc, const_cast<char*>("One ASGI WebSocket connection.")},
        {0, nullptr},
    };
    static PyType_Spec spec = {"trestle.WebSocketCall", sizeof(ws_call_object), 0,
                               Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION, slots};
    ws_type = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&spec));
}

py::ref new_ws_call_object(std::unique_ptr<ws_call> p) {
    auto* o = PyObject_New(ws_call_object, ws_type);
    if (!o) return {};
    o->impl = p.release();
    return py::ref::steal(reinterpret_cast<PyObject*>(o));
}

py::ref ws_bound(PyObject* call, const char* which) {
    PyMethodDef* def = std::strcmp(which, "receive") == 0 ? &ws_receive_def
                       : std::strcmp(which, "send") == 0  ? &ws_send_def
                                                          : &ws_done_def;
    return py::ref::steal(PyCFunction_New(def, call));
}

} // namespace trestle::asgi
