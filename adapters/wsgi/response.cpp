// start_response, write() and the framing of a WSGI response (PEP 3333).
#include "adapters/wsgi/wsgi.hpp"

#include "adapters/wsgi/output_gate.hpp"

#include "bridge/net/app_port.hpp"
#include "bridge/net/http_util.hpp"
#include "bridge/net/server_context.hpp"
#include "bridge/observability/log.hpp"
#include "bridge/python/c_type.hpp"
#include "bridge/python/interpreter.hpp"

#include <boost/beast/core/string.hpp>

#include <charconv>
#include <fcntl.h>
#include <unistd.h>

namespace trestle::wsgi {

namespace {

struct start_response_state {
    explicit start_response_state(call* c) noexcept : owner(c) {}
    call* owner;          // null once the request is over; read and written holding `gate`
    output_gate gate;     // the object's: threads still waiting on it may outlive the call
};

using start_response_type = py::c_type<start_response_state>;

PyObject* start_response_call(PyObject* self, PyObject* args, PyObject* kwargs) {
    start_response_state* o = &start_response_type::of(self);
    static const char* kwlist[] = {"status", "headers", "exc_info", nullptr};
    PyObject *status, *headers, *exc_info = Py_None;   // borrowed
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|O:start_response", const_cast<char**>(kwlist),
                                     &status, &headers, &exc_info))
        return nullptr;
    gate_hold held(o->gate);
    if (!o->owner) {
        PyErr_SetString(PyExc_RuntimeError, "start_response() called after the request ended");
        return nullptr;
    }
    return o->owner->on_start_response(status, headers, exc_info);
}

PyObject* write_call(PyObject* self, PyObject* data) {
    start_response_state* o = &start_response_type::of(self);
    gate_hold held(o->gate);
    if (!o->owner || o->owner->finished()) {
        PyErr_SetString(PyExc_RuntimeError, "write() called after the request ended");
        return nullptr;
    }
    if (!o->owner->on_body_held(data)) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_OSError, "client disconnected");
        return nullptr;
    }
    Py_RETURN_NONE;
}

PyMethodDef write_def = {"write", write_call, METH_O, "Write response body bytes (PEP 3333)."};

// A str of latin-1 code points as bytes, without allocating for the common case.
bool latin1_view(PyObject* s, std::string_view& out) {
    if (!PyUnicode_Check(s)) return false;
    if (PyUnicode_KIND(s) != PyUnicode_1BYTE_KIND) return false;
    out = {reinterpret_cast<const char*>(PyUnicode_1BYTE_DATA(s)),
           static_cast<std::size_t>(PyUnicode_GET_LENGTH(s))};
    return true;
}

PyObject* type_error(const char* fmt, PyObject* obj) {
    PyErr_Format(PyExc_TypeError, fmt, Py_TYPE(obj)->tp_name);
    return nullptr;
}

// exc_info must be what sys.exc_info() returns: (type, value, traceback) of
// one exception, or (None, None, None) outside an except block. Anything else
// would reach the error indicator as garbage (a non-type as the exception's
// type corrupts the interpreter), so it is the app's TypeError. Returns the
// exception, or Py_None for (None, None, None), with `tb` set to the
// traceback or Py_None; null with TypeError set otherwise. exc_info[0] is
// only checked, never used: raise uses the value's own type.
py::borrowed checked_exc_info(PyObject* exc_info, py::borrowed& tb) {
    if (!PyTuple_Check(exc_info) || PyTuple_GET_SIZE(exc_info) != 3)
        return type_error("exc_info must be a (type, value, traceback) tuple as sys.exc_info() returns, not %.100s",
                          exc_info);
    PyObject* t = PyTuple_GET_ITEM(exc_info, 0);   // borrowed
    PyObject* v = PyTuple_GET_ITEM(exc_info, 1);   // borrowed
    tb = PyTuple_GET_ITEM(exc_info, 2);
    if (t == Py_None && v == Py_None && tb == Py_None) return Py_None;
    if (!PyExceptionInstance_Check(v)) {
        PyErr_Format(PyExc_TypeError, "exc_info[1] must be an exception instance, not %.100s", Py_TYPE(v)->tp_name);
        return nullptr;
    }
    if (!PyExceptionClass_Check(t)) {
        PyErr_Format(PyExc_TypeError, "exc_info[0] must be an exception class, not %.100s", Py_TYPE(t)->tp_name);
        return nullptr;
    }
    if (tb != Py_None && !PyTraceBack_Check(tb)) {
        PyErr_Format(PyExc_TypeError, "exc_info[2] must be a traceback or None, not %.100s", Py_TYPE(tb)->tp_name);
        return nullptr;
    }
    return v;
}

} // namespace

void init_response_type() {
    // The gate dies with the object, when no thread is in it: each holds a reference.
    start_response_type::define("trestle.StartResponse", {
        {Py_tp_call, reinterpret_cast<void*>(start_response_call)},
        {Py_tp_doc, const_cast<char*>("The start_response callable of one WSGI request.")},
    });
}

call::call(net::app_port& ex, const net::server_context& ctx)
    : ex_(ex), w_(ex, ctx), start_response_(start_response_type::make(this)) {}

call::~call() {
    if (!start_response_) {
        w_.finish(true);
        return;
    }
    start_response_state& o = start_response_type::of(start_response_.get());
    gate_hold held(o.gate);   // a thread of the app's may be inside
    o.owner = nullptr;
    w_.finish(true);   // no-op unless the request ended without a verdict
}

output_gate& call::gate() const { return start_response_type::of(start_response_.get()).gate; }

PyObject* call::on_start_response(PyObject* status, PyObject* headers, PyObject* exc_info) {
    if (exc_info != Py_None) {
        py::borrowed tb;
        py::borrowed value = checked_exc_info(exc_info, tb);
        if (!value) return nullptr;
        if (w_.head_emitted()) {
            // PEP 3333: too late to change the response; re-raise the app's
            // error as wsgiref does: raise exc_info[1].with_traceback(exc_info[2]).
            if (value == Py_None) {
                PyErr_SetString(PyExc_TypeError,
                                "start_response() got exc_info (None, None, None) after the response started: "
                                "there is no exception to re-raise");
                return nullptr;
            }
            if (PyException_SetTraceback(value, tb) < 0) return nullptr;
            PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(value)), value);
            return nullptr;
        }
    } else if (started_) {
        PyErr_SetString(PyExc_AssertionError,
                        "start_response() called a second time without exc_info (PEP 3333)");
        return nullptr;
    }

    std::string_view st;
    if (!latin1_view(status, st)) return type_error("status must be a str, not %.100s", status);
    unsigned code = 0;
    auto [p, ec] = std::from_chars(st.data(), st.data() + std::min<std::size_t>(st.size(), 3), code);
    if (st.size() < 3 || ec != std::errc{} || p != st.data() + 3 || code < 100 ||
        (st.size() > 3 && st[3] != ' ') || !net::valid_field_value(st)) {
        PyErr_Format(PyExc_ValueError, "invalid status %R: expected '200 OK'", status);
        return nullptr;
    }
    // A 1xx is an interim response: sent as the final one, the client would
    // wait for another and take the next request's response for this one.
    if (code < 200 || code > 599) {
        PyErr_Format(PyExc_ValueError, "invalid status %R: a response's status is 200 to 599", status);
        return nullptr;
    }
    if (!PyList_Check(headers) && !PyTuple_Check(headers))
        return type_error("headers must be a list of (name, value) tuples, not %.100s", headers);

    std::string block;
    std::optional<std::uint64_t> declared;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(headers);
    PyObject** items = PySequence_Fast_ITEMS(headers);   // borrowed
    for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* item = items[i];
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2)
            return type_error("each header must be a (name, value) tuple, not %.100s", item);
        std::string_view name, value;
        if (!latin1_view(PyTuple_GET_ITEM(item, 0), name) || !latin1_view(PyTuple_GET_ITEM(item, 1), value)) {
            PyErr_Format(PyExc_TypeError, "header %R: name and value must be latin-1 str", item);
            return nullptr;
        }
        if (!net::is_token(name) || !net::valid_field_value(value)) {
            PyErr_Format(PyExc_ValueError, "header %R: invalid name or a control character in the value", item);
            return nullptr;
        }
        if (net::is_hop_by_hop(name)) {
            log::error("app set hop-by-hop header '" + std::string(name) + "', which PEP 3333 forbids");
            PyErr_Format(PyExc_AssertionError, "hop-by-hop header %R is not allowed in a WSGI response (PEP 3333)",
                         PyTuple_GET_ITEM(item, 0));
            return nullptr;
        }
        if (boost::beast::iequals(name, "content-length")) {
            std::uint64_t v = 0;
            auto [q, e] = std::from_chars(value.data(), value.data() + value.size(), v);
            if (e != std::errc{} || q != value.data() + value.size() || value.empty()) {
                PyErr_Format(PyExc_ValueError, "invalid Content-Length %R", PyTuple_GET_ITEM(item, 1));
                return nullptr;
            }
            if (declared && *declared != v) {
                PyErr_SetString(PyExc_ValueError, "conflicting Content-Length headers");
                return nullptr;
            }
            declared = v;
            continue;   // the writer emits it
        }
        block.append(name);
        block += ": ";
        block.append(value);
        block += "\r\n";
    }

    started_ = true;
    std::string line(st);
    if (st.size() == 3) line += ' ';
    w_.set_head(code, line, std::move(block), declared);
    return PyCFunction_New(&write_def, start_response_.get());
}

bool call::emit_head(std::optional<std::uint64_t> known_length) {
    if (w_.head_emitted()) return true;
    if (!started_) {
        PyErr_SetString(PyExc_RuntimeError, "the app produced a body without calling start_response()");
        return false;
    }
    w_.emit_head(known_length);
    return true;
}

bool call::flush() {
    std::string& out = w_.out();
    if (out.empty()) return true;
    if (gone_) return false;
    auto r = ex_.try_write(out);
    if (r == net::app_port::write_result::would_block) {
        // The client reads slower than the app writes: pause the app.
        bool ok;
        {
            py::gil_release nogil;
            ok = ex_.write(out);
        }
        r = ok ? net::app_port::write_result::ok : net::app_port::write_result::gone;
    }
    if (r == net::app_port::write_result::gone) {
        gone_ = true;
        out.clear();
        return false;
    }
    return true;
}

bool call::on_body(PyObject* data) {
    gate_hold held(gate());
    return on_body_held(data);
}

bool call::on_body_held(PyObject* data) {
    if (!PyBytes_Check(data)) {
        type_error("WSGI body chunks must be bytes, not %.100s", data);
        return false;
    }
    Py_ssize_t n = PyBytes_GET_SIZE(data);
    if (n == 0) return true;   // PEP 3333: headers wait for the first non-empty chunk
    if (!emit_head(std::nullopt)) return false;
    w_.append_body({PyBytes_AS_STRING(data), static_cast<std::size_t>(n)});
    return flush();
}

bool call::on_sequence(PyObject* seq) {
    gate_hold held(gate());
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject** items = PySequence_Fast_ITEMS(seq);   // borrowed
    std::uint64_t total = 0;
    for (Py_ssize_t i = 0; i < n; ++i) {
        if (!PyBytes_Check(items[i])) {
            type_error("WSGI body chunks must be bytes, not %.100s", items[i]);
            return false;
        }
        total += static_cast<std::uint64_t>(PyBytes_GET_SIZE(items[i]));
    }
    if (!emit_head(w_.head_emitted() ? std::nullopt : std::optional<std::uint64_t>(total))) return false;
    w_.out().reserve(w_.out().size() + total + 16 * static_cast<std::size_t>(n));
    for (Py_ssize_t i = 0; i < n; ++i)
        w_.append_body({PyBytes_AS_STRING(items[i]), static_cast<std::size_t>(PyBytes_GET_SIZE(items[i]))});
    return true;   // complete() flushes with the end of the response: one write
}

bool call::on_file(const file_region& r) {
    gate_hold held(gate());
    std::uint64_t count = r.size > r.offset ? r.size - r.offset : 0;
    auto declared = w_.declared_length();
    if (declared && *declared < count) count = *declared;
    if (!emit_head(count)) return false;
    if (w_.no_body() || count == 0) return true;
    if (!flush()) return false;
    // Owned from here on, and not inherited by a child the app spawns.
    net::unique_fd fd(::fcntl(r.fd, F_DUPFD_CLOEXEC, 0));
    if (!fd) {
        PyErr_SetFromErrno(PyExc_OSError);
        return false;
    }
    bool ok;
    {
        py::gil_release nogil;
        ok = ex_.send_file({std::move(fd), r.offset, count});
    }
    if (!ok) {
        gone_ = true;
        return false;
    }
    w_.add_sent(count);   // end_body() notices a file shorter than declared
    return true;
}

void call::complete() {
    gate_hold held(gate());
    if (w_.finished()) return;
    if (!w_.head_emitted()) {
        if (!started_) {
            log::error("the app returned without calling start_response(); answering 500");
            reject_held(500);
            return;
        }
        w_.emit_head(std::uint64_t{0});
    }
    w_.end_body();
    w_.finish(gone_);
}

void call::fail(std::string_view context) {
    gate_hold held(gate());
    if (w_.finished()) return;
    if (!gone_) {
        log::error("exception in app while handling " + std::string(context) + ":");
        py::print_exception();
    } else {
        PyErr_Clear();
    }
    if (!w_.head_emitted()) {
        unsigned status = ex_.body_error_status();
        reject_held(status ? status : 500);
        return;
    }
    // Too late for a 500: send what is buffered, without a final chunk, and
    // end the connection so the client sees a truncated response.
    w_.abandon();
    w_.finish(gone_);
}

void call::reject_held(unsigned status) {
    if (w_.finished()) return;
    w_.error_response(status);
    w_.finish(gone_);
}

} // namespace trestle::wsgi
