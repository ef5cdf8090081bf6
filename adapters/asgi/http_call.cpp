#include "adapters/asgi/http_call.hpp"

#include "bridge/net/app_port.hpp"
#include "bridge/net/http_util.hpp"
#include "bridge/net/server_context.hpp"
#include "bridge/observability/log.hpp"
#include "bridge/python/c_type.hpp"
#include "bridge/python/call.hpp"
#include "bridge/python/interpreter.hpp"
#include "bridge/runtime/loop_thread.hpp"
#include "bridge/runtime/scheduling.hpp"

#include <cerrno>
#include <cstdio>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace trestle::asgi {

namespace {

constexpr std::size_t receive_chunk = 64 * 1024;

namespace names = py::names;

// Sets `fut`'s result unless it is already done (e.g. cancelled).
void resolve(py::ref& fut, PyObject* value) {
    if (!fut) return;
    py::ref f = std::move(fut);
    py::ref done = py::call_method(f.get(), names::done);
    if (done && done.get() == Py_False) {
        py::ref r = py::call_method(f.get(), names::set_result, value);
        if (!r) py::print_exception();
    } else if (!done) {
        py::print_exception();
    }
}

void reject_waiter(py::ref& fut, PyObject* exc_type, const char* message) {
    if (!fut) return;
    py::ref f = std::move(fut);
    py::ref done = py::call_method(f.get(), names::done);
    if (done && done.get() == Py_False) {
        py::ref exc = py::ref::steal(PyObject_CallFunction(exc_type, "s", message));
        py::ref r = exc ? py::call_method(f.get(), names::set_exception, exc.get()) : py::ref{};
        if (!r) py::print_exception();
    } else if (!done) {
        py::print_exception();
    }
}

} // namespace

http_call::http_call(std::shared_ptr<net::app_port> ex, runtime::loop_thread& loop, const net::server_context& ctx)
    : ex_(std::move(ex)), w_(*ex_, ctx), mb_(std::make_shared<mailbox>()), loop_(loop.loop()) {
    mb_->loop = &loop;
    mb_->call = this;
    ex_->set_app_waker([mb = mb_] {
        // io thread, exchange lock held: only hand off.
        if (mb->queued.exchange(true)) return;
        mb->loop->post([mb] {
            mb->queued = false;
            if (mb->call) mb->call->on_io_event();
        });
    });
}

http_call::~http_call() {
    mb_->call = nullptr;
    w_.finish(true);   // no-op unless the request ended without a verdict
}

std::string http_call::describe() const {
    return ex_->head().method + " " + ex_->head().target;
}

py::ref http_call::disconnect_message() {
    disconnected_ = true;
    return py::ref::steal(Py_BuildValue("{O:O}", names::type, names::http_disconnect));
}

py::ref http_call::read_message() {
    // As uvicorn does: once the client is gone, receive() says so, even if
    // some body had arrived before it left.
    if (ex_->client_gone() || ex_->body_error_status()) return disconnect_message();
    std::size_t cap = receive_chunk;
    const auto& cl = ex_->head().content_length;
    if (!ex_->head().chunked && cl) cap = static_cast<std::size_t>(std::min<std::uint64_t>(cap, std::max<std::uint64_t>(*cl - std::min(*cl, body_read_), 1)));
    py::ref body = py::ref::steal(PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(cap)));
    if (!body) return {};
    auto got = ex_->try_read(PyBytes_AS_STRING(body.get()), cap);
    if (!got) {
        if (ex_->client_gone() || ex_->body_error_status()) return disconnect_message();
        ex_->request_body();
        return {};
    }
    body_read_ += *got;
    if (*got != cap) {
        PyObject* b = body.release();
        if (_PyBytes_Resize(&b, static_cast<Py_ssize_t>(*got)) < 0) return {};
        body = py::ref::steal(b);
    }
    bool more = !ex_->body_consumed();
    if (!more) body_done_ = true;
    return py::ref::steal(Py_BuildValue("{O:O,O:O,O:O}", names::type, names::http_request, names::body, body.get(),
                                        names::more_body, more ? Py_True : Py_False));
}

void drop_if_done(py::ref& fut) {
    if (!fut) return;
    py::ref done = py::call_method(fut.get(), names::done);
    if (!done) PyErr_Clear();
    if (done.get() == Py_True) fut.reset();
}

PyObject* http_call::receive() {
    drop_if_done(receive_waiter_);
    if (receive_waiter_) {
        PyErr_SetString(PyExc_RuntimeError, "receive() called again before the previous call completed");
        return nullptr;
    }
    if (!body_done_ && !disconnected_) {
        py::ref msg = read_message();
        if (msg) return done_awaitable(msg.get()).release();
        if (PyErr_Occurred()) return nullptr;
    } else if (disconnected_ || state_ == send_state::done || ex_->client_gone()) {
        // After the body: http.disconnect once the response is complete or the client is gone.
        return done_awaitable(disconnect_message().get()).release();
    }
    receive_waiter_ = py::call_method(loop_, names::create_future);
    if (!receive_waiter_) return nullptr;
    return receive_waiter_.copy().release();   // the caller's; ours stays
}

PyObject* http_call::send(PyObject* message) {
    std::string_view type = message_type(message);
    if (type.empty()) return nullptr;
    drop_if_done(send_waiter_);
    if (send_waiter_) {
        PyErr_SetString(PyExc_RuntimeError, "send() called again before the previous send completed");
        return nullptr;
    }
    if (auto error = order_error(state_, type)) {
        if (state_ == send_state::done && ex_->client_gone())
            PyErr_SetString(PyExc_OSError, "the client has disconnected");
        else
            PyErr_SetString(PyExc_RuntimeError, error->c_str());
        return nullptr;
    }
    if (type == "http.response.informational") return send_informational(message);
    if (state_ == send_state::start) return start_response(message);
    if (type == "http.response.pathsend") return send_path(message);
    if (state_ == send_state::trailers) return send_trailers(message);
    return send_body(message);
}

PyObject* http_call::send_informational(PyObject* message) {
    auto r = parse_informational(message);
    if (!r) return nullptr;
    w_.informational(r->first, r->second);
    flush();
    return done_awaitable(Py_None).release();
}

PyObject* http_call::send_trailers(PyObject* message) {
    bool more = false;
    if (!parse_trailers(message, trailer_fields_, more)) return nullptr;
    if (more) return done_awaitable(Py_None).release();
    w_.end_body(trailer_fields_);
    state_ = send_state::done;
    w_.finish(false);
    complete_waiters();
    return done_awaitable(Py_None).release();
}

PyObject* http_call::start_response(PyObject* message) {
    std::optional<response_start> r = parse_response_start(message);
    if (!r) return nullptr;
    std::string line = std::to_string(r->status) + " " + std::string(net::reason_phrase(r->status));
    w_.set_head(r->status, line, std::move(r->fields), r->declared);
    if (r->close) w_.close_after();
    trailers_ = r->trailers;
    state_ = send_state::body;
    return done_awaitable(Py_None).release();
}

PyObject* http_call::send_body(PyObject* message) {
    PyObject* body = PyDict_GetItemWithError(message, names::body);         // borrowed
    if (!body && PyErr_Occurred()) return nullptr;
    PyObject* more_o = PyDict_GetItemWithError(message, names::more_body);  // borrowed
    if (!more_o && PyErr_Occurred()) return nullptr;
    int more_body = more_o ? PyObject_IsTrue(more_o) : 0;
    if (more_body < 0) return nullptr;   // bool() raised: the app's error, not a final body
    bool more = more_body == 1;
    Py_buffer buf{};
    std::string_view data;
    if (body && !bytes_view(body, buf, data)) return nullptr;
    if (ex_->client_gone()) {
        if (body) release_view(buf);
        PyErr_SetString(PyExc_OSError, "the client has disconnected");
        return nullptr;
    }
    // A start followed by one final body becomes one write with Content-Length.
    // (Not with trailers to come: they need the chunked framing.)
    if (!w_.head_emitted())
        w_.emit_head(more || trailers_ ? std::nullopt : std::optional<std::uint64_t>(data.size()));
    w_.append_body(data);
    if (body) release_view(buf);
    if (!more && trailers_) {
        state_ = send_state::trailers;   // the body's end goes out with them
        if (flush()) return done_awaitable(Py_None).release();
    } else if (!more) {
        w_.end_body();
        state_ = send_state::done;
        w_.finish(false);
        complete_waiters();
        runtime::yield_core_now_and_then();
        return done_awaitable(Py_None).release();
    }
    if (flush()) return done_awaitable(Py_None).release();
    if (ex_->client_gone()) {
        PyErr_SetString(PyExc_OSError, "the client has disconnected");
        return nullptr;
    }
    // Above the high-water mark: suspend until the socket drains.
    send_waiter_ = py::call_method(loop_, names::create_future);
    if (!send_waiter_) return nullptr;
    return send_waiter_.copy().release();   // the caller's; ours stays
}

PyObject* http_call::send_path(PyObject* message) {
    PyObject* path = PyDict_GetItemString(message, "path");   // borrowed
    py::ref fs = py::ref::steal(path ? PyUnicode_EncodeFSDefault(path) : nullptr);
    if (!fs) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "http.response.pathsend needs a str 'path'");
        return nullptr;
    }
    errno = 0;
    net::unique_fd fd(::open(PyBytes_AS_STRING(fs.get()), O_RDONLY | O_CLOEXEC));
    struct stat st{};
    if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
        if (errno == 0) errno = EISDIR;   // open and fstat worked: not a regular file
        fd.reset();                        // a successful close() leaves errno alone
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
        return nullptr;
    }
    std::uint64_t count = static_cast<std::uint64_t>(st.st_size);
    if (auto d = w_.declared_length(); d && *d < count) count = *d;
    w_.emit_head(count);
    if (!w_.no_body() && count > 0) {
        // The head goes first, the file after it, then the completion.
        flush();
        ex_->queue_file({std::move(fd), 0, count});
        w_.add_sent(count);
    }
    w_.end_body();
    state_ = send_state::done;
    w_.finish(false);
    complete_waiters();
    return done_awaitable(Py_None).release();
}

bool http_call::flush() {
    std::string& out = w_.out();
    if (out.empty()) return true;
    auto r = ex_->try_write(out);
    if (r == net::app_port::write_result::gone) out.clear();
    return r == net::app_port::write_result::ok;
}

void http_call::arm_timeout(py::ref task, std::chrono::milliseconds timeout) {
    task_ = std::move(task);
    timeout_ = timeout;
    ex_->arm_timeout(std::chrono::steady_clock::now() + timeout);   // the waker tells us
}

void http_call::cancel_for_timeout() {
    py::ref task = std::move(task_);
    static PyObject* fn = nullptr;   // trestle._runtime.cancel_timed_out: owned, never released
    if (!fn) {
        py::ref m = py::ref::steal(PyImport_ImportModule("trestle._runtime"));
        fn = m ? PyObject_GetAttrString(m.get(), "cancel_timed_out") : nullptr;
    }
    char secs[32];
    std::snprintf(secs, sizeof secs, "%.3g", std::chrono::duration<double>(timeout_).count());
    std::string why = std::string("the request ran longer than --timeout (") + secs + " s)";
    py::ref message = py::ref::steal(PyUnicode_FromString(("trestle: " + why).c_str()));
    py::ref where = py::ref::steal(fn && message ? PyObject_CallFunctionObjArgs(fn, task.get(), message.get(), nullptr)
                                                 : nullptr);
    const char* text = where ? PyUnicode_AsUTF8(where.get()) : nullptr;
    std::string stack = text ? text : "  (the stack could not be read)";
    if (!text) py::print_exception();
    while (!stack.empty() && stack.back() == '\n') stack.pop_back();   // the log adds its own
    log::error("request timeout: " + describe() + " ran longer than --timeout (" + secs + " s) in the ASGI app; " +
               (!ex_->output_started() ? "answered 504" : "its response had started, so its connection was closed") +
               "; cancelling its task, which waits at (most recent call last):\n" + stack);
}

void http_call::on_io_event() {
    // A cancelled task's waiters are cancelled with it: nothing else to do.
    if (task_ && ex_->timed_out()) return cancel_for_timeout();
    if (receive_waiter_) {
        if (!body_done_ && !disconnected_) {
            py::ref msg = read_message();
            if (msg) resolve(receive_waiter_, msg.get());
            else if (PyErr_Occurred()) py::print_exception();
        } else if (ex_->client_gone()) {
            resolve(receive_waiter_, disconnect_message().get());
        }
    }
    if (send_waiter_) {
        if (ex_->client_gone()) reject_waiter(send_waiter_, PyExc_OSError, "the client has disconnected");
        else if (flush()) resolve(send_waiter_, Py_None);
    }
}

void http_call::complete_waiters() {
    if (receive_waiter_) resolve(receive_waiter_, disconnect_message().get());
    if (send_waiter_) reject_waiter(send_waiter_, PyExc_OSError, "the response has ended");
}

void http_call::fail_early() {
    log::error("cannot start the ASGI app for " + describe() + ":");
    py::print_exception();
    w_.error_response(500);
    w_.finish(false);
    state_ = send_state::done;
}

void http_call::on_done(PyObject* task) {
    task_.reset();
    place_.release();
    bool gone = ex_->client_gone();
    bool timed_out = ex_->timed_out();   // then gone too: the client was answered already
    py::ref cancelled = py::call_method(task, names::cancelled);
    if (cancelled && cancelled.get() == Py_True) {
        if (timed_out) log::info("ASGI task for " + describe() + " ended, cancelled after its --timeout");
        else if (state_ != send_state::done) log::warning("ASGI task for " + describe() + " was cancelled");
        if (state_ != send_state::done) {
            w_.abandon();
            w_.finish(gone);
        }
    } else {
        py::ref exc = py::call_method(task, names::exception);
        if (!exc) PyErr_Clear();
        if (exc && exc.get() != Py_None) {
            if (!gone || timed_out) {
                log::error("exception in ASGI app while handling " + describe() +
                           (timed_out ? ", after its --timeout:" : ":"));
                PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.get())), exc.get());
                py::print_exception();
            }
            if (state_ == send_state::start && !gone) {
                unsigned body_status = ex_->body_error_status();
                w_.error_response(body_status ? body_status : 500);
                w_.finish(false);
            } else if (state_ != send_state::done) {
                // After http.response.start the response belongs to the app,
                // even if its head is still buffered here: close, as a server
                // that wrote the head at once would have to.
                w_.abandon();
                w_.finish(true);
            }
        } else if (state_ == send_state::start) {
            // After a body that could not be read (timeout, limit), the app
            // was told http.disconnect, and returning is the right answer to
            // that: the client gets the body's status (408, 413), as from a
            // WSGI app whose wsgi.input raised.
            unsigned body_status = ex_->body_error_status();
            if (!gone && !body_status)
                log::error("ASGI app returned without sending a response for " + describe() + "; answering 500");
            w_.error_response(body_status ? body_status : 500);
            w_.finish(gone);
        } else if (state_ == send_state::trailers) {
            // The body is whole: the response ends without the trailers.
            w_.end_body();
            w_.finish(gone);
        } else if (state_ == send_state::body) {
            if (!gone) log::error("ASGI app returned before completing the response for " + describe() + "; closing");
            w_.abandon();
            w_.finish(true);
        }
    }
    state_ = send_state::done;
    complete_waiters();
}

// ---- the Python object ------------------------------------------------------

namespace {

struct owned_call {
    std::unique_ptr<http_call> impl;
};
using call_type = py::c_type<owned_call>;

http_call* impl(PyObject* self) { return call_type::of(self).impl.get(); }

PyObject* call_receive(PyObject* self, PyObject*) { return impl(self)->receive(); }
PyObject* call_send(PyObject* self, PyObject* message) { return impl(self)->send(message); }
PyObject* call_done(PyObject* self, PyObject* task) {
    impl(self)->on_done(task);
    Py_RETURN_NONE;
}

PyMethodDef receive_def = {"receive", call_receive, METH_NOARGS, "ASGI receive()."};
PyMethodDef send_def = {"send", call_send, METH_O, "ASGI send(message)."};
PyMethodDef done_def = {"_done", call_done, METH_O, "Task completion."};

} // namespace

void init_call_type() {
    call_type::define("trestle.HTTPCall", {{Py_tp_doc, const_cast<char*>("One ASGI HTTP request.")}});
}

py::ref new_call_object(std::unique_ptr<http_call> p) { return call_type::make(std::move(p)); }

http_call* impl_of(PyObject* call) { return impl(call); }
py::ref bound_receive(PyObject* call) { return py::ref::steal(PyCFunction_New(&receive_def, call)); }
py::ref bound_send(PyObject* call) { return py::ref::steal(PyCFunction_New(&send_def, call)); }
py::ref bound_done(PyObject* call) { return py::ref::steal(PyCFunction_New(&done_def, call)); }

} // namespace trestle::asgi
