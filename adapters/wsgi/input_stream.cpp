// wsgi.input: the request body as a stream (PEP 3333). Reads come from the
// exchange; when no bytes are there yet the GIL is released while the io
// thread fetches more, so a slow upload never blocks other Python threads.
// Memory is bounded by what the app asks for, never by the body size.
#include "adapters/wsgi/wsgi.hpp"

#include "bridge/net/app_port.hpp"
#include "bridge/python/c_type.hpp"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <string>
#include <utility>

namespace trestle::wsgi {

namespace {

// What one stream shares between the Python threads that use it. An app may
// hand wsgi.input to other threads, so each read call holds the stream
// (`busy`) from start to end: the buffer fields are then touched by that
// thread only, with the GIL, or without it while the exchange fills the
// buffer. `ex`, `readers` and `busy` are under `m`.
struct input_state {
    std::mutex m;
    std::condition_variable cv;   // busy cleared, or readers down to 0
    net::app_port* ex = nullptr;  // null once the request is over
    int readers = 0;              // threads inside ex->read(), GIL released
    bool busy = false;
    std::string buf;              // received, not yet returned (look-ahead for readline)
    std::size_t pos = 0;
    std::uint64_t remaining = 0;  // body bytes still to come when the length is known
    bool known_length = false;
    bool eof = false;
};

// The stream object holds its state: it ends with the object, and no read
// runs then, as each holds a reference to the stream.
using input_type = py::c_type<input_state>;
constexpr std::size_t default_chunk = 64 * 1024;

input_state& state(PyObject* self) { return input_type::of(self); }

// Holds the stream for one read call. A second thread waits for it with the
// GIL released, so the holder, which may itself be waiting for the body
// without the GIL, can take the GIL back and finish.
class hold {
public:
    explicit hold(input_state& st) : st_(st) {
        {
            std::lock_guard lock(st.m);
            if (!st.busy) {
                st.busy = true;
                return;
            }
        }
        py::gil_release nogil;
        std::unique_lock lock(st.m);
        st.cv.wait(lock, [&] { return !st.busy; });
        st.busy = true;
    }
    ~hold() {
        {
            std::lock_guard lock(st_.m);
            st_.busy = false;
        }
        st_.cv.notify_all();
    }
    hold(const hold&) = delete;
    hold& operator=(const hold&) = delete;

private:
    input_state& st_;
};

std::size_t avail(const input_state& o) { return o.buf.size() - o.pos; }

Py_ssize_t request_ended() {
    PyErr_SetString(PyExc_ValueError, "wsgi.input used after the request ended");
    return -1;
}

// Every read call starts here, holding the stream: after the request, even
// bytes already buffered are not returned.
bool live(input_state& o) {
    std::lock_guard lock(o.m);
    if (o.ex) return true;
    PyErr_SetString(PyExc_ValueError, "wsgi.input used after the request ended");
    return false;
}

// Adds at least one byte to the buffer, or reaches end of body. The caller
// holds the stream. Returns -1 with an exception set, 0 at end of body, else
// bytes added.
Py_ssize_t fill(input_state& o, std::size_t want) {
    net::app_port* ex;
    {
        std::lock_guard lock(o.m);
        ex = o.ex;
    }
    if (!ex) return request_ended();
    if (o.eof) return 0;
    if (o.pos == o.buf.size()) {
        o.buf.clear();
        o.pos = 0;
    }
    std::size_t chunk = std::max<std::size_t>(want, 1);
    if (o.known_length) chunk = std::min<std::uint64_t>(std::max<std::uint64_t>(o.remaining, 1), std::max(chunk, default_chunk));
    chunk = std::min(chunk, std::size_t{16} << 20);
    std::size_t old = o.buf.size();
    o.buf.resize(old + chunk);
    char* dst = o.buf.data() + old;   // stable: no other thread touches buf while we hold the stream
    // The GIL is held, so the request cannot end (detach_input needs it) and
    // `ex` is alive here.
    auto got = ex->try_read(dst, chunk);
    if (!got) {
        {
            std::lock_guard lock(o.m);
            ++o.readers;
        }
        py::gil_release nogil;
        // detach_input waits until `readers` is back to 0 before the request
        // may end, and wakes this read if it is still waiting for the body.
        got = ex->read(dst, chunk);
        std::lock_guard lock(o.m);
        if (--o.readers == 0) o.cv.notify_all();
    }
    if (!got) {
        o.buf.resize(old);
        bool over;
        {
            std::lock_guard lock(o.m);
            over = !o.ex;
        }
        if (over) return request_ended();
        PyErr_SetString(PyExc_OSError, "the request body could not be read (client gone, timeout or limit)");
        return -1;
    }
    o.buf.resize(old + *got);
    if (*got == 0) o.eof = true;
    if (o.known_length) o.remaining -= std::min<std::uint64_t>(o.remaining, *got);
    return static_cast<Py_ssize_t>(*got);
}

PyObject* take(input_state& o, std::size_t n) {
    n = std::min(n, avail(o));
    PyObject* r = PyBytes_FromStringAndSize(o.buf.data() + o.pos, static_cast<Py_ssize_t>(n));
    o.pos += n;
    return r;
}

bool parse_size(PyObject* const* args, Py_ssize_t nargs, Py_ssize_t& size, const char* fname) {
    size = -1;
    if (nargs > 1) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most 1 argument", fname);
        return false;
    }
    if (nargs == 1 && args[0] != Py_None) {
        size = PyLong_AsSsize_t(args[0]);
        if (size == -1 && PyErr_Occurred()) return false;
    }
    return true;
}

PyObject* input_read(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
    Py_ssize_t size;
    if (!parse_size(args, nargs, size, "read")) return nullptr;
    input_state& o = state(self);
    hold held(o);
    if (!live(o)) return nullptr;
    if (size < 0) {
        for (;;) {
            Py_ssize_t r = fill(o, default_chunk);
            if (r < 0) return nullptr;
            if (r == 0) break;
        }
        return take(o, avail(o));
    }
    while (avail(o) < static_cast<std::size_t>(size) && !o.eof) {
        if (fill(o, static_cast<std::size_t>(size) - avail(o)) < 0) return nullptr;
    }
    return take(o, static_cast<std::size_t>(size));
}

// The caller holds the stream.
PyObject* readline_impl(input_state& o, Py_ssize_t size) {
    std::size_t scanned = 0;
    for (;;) {
        const char* start = o.buf.data() + o.pos;
        std::size_t n = avail(o);
        if (const void* nl = std::memchr(start + scanned, '\n', n - scanned)) {
            std::size_t len = static_cast<const char*>(nl) - start + 1;
            if (size >= 0) len = std::min(len, static_cast<std::size_t>(size));
            return take(o, len);
        }
        scanned = n;
        if (size >= 0 && n >= static_cast<std::size_t>(size)) return take(o, static_cast<std::size_t>(size));
        if (o.eof) return take(o, n);
        if (fill(o, 8192) < 0) return nullptr;
    }
}

PyObject* input_readline(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
    Py_ssize_t size;
    if (!parse_size(args, nargs, size, "readline")) return nullptr;
    hold held(state(self));
    if (!live(state(self))) return nullptr;
    return readline_impl(state(self), size);
}

PyObject* input_readlines(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
    Py_ssize_t hint;
    if (!parse_size(args, nargs, hint, "readlines")) return nullptr;
    py::ref lines = py::ref::steal(PyList_New(0));
    if (!lines) return nullptr;
    hold held(state(self));
    if (!live(state(self))) return nullptr;
    Py_ssize_t total = 0;
    for (;;) {
        py::ref line = py::ref::steal(readline_impl(state(self), -1));
        if (!line) return nullptr;
        Py_ssize_t n = PyBytes_GET_SIZE(line.get());
        if (n == 0) break;
        if (PyList_Append(lines.get(), line.get()) < 0) return nullptr;
        total += n;
        if (hint > 0 && total >= hint) break;
    }
    return lines.release();
}

PyObject* input_iternext(PyObject* self) {
    hold held(state(self));
    if (!live(state(self))) return nullptr;
    py::ref line = py::ref::steal(readline_impl(state(self), -1));
    if (line && PyBytes_GET_SIZE(line.get()) == 0) return nullptr;   // StopIteration
    return line.release();
}

PyObject* input_true(PyObject*, PyObject*) { Py_RETURN_TRUE; }

PyMethodDef input_methods[] = {
    {"read", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(input_read)), METH_FASTCALL,
     "read(size=-1): up to size bytes of the body; all of it when size is -1."},
    {"readline", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(input_readline)), METH_FASTCALL,
     "readline(size=-1): one line, at most size bytes."},
    {"readlines", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(input_readlines)), METH_FASTCALL,
     "readlines(hint=-1): the remaining lines."},
    {"readable", input_true, METH_NOARGS, "Always True."},
    {nullptr, nullptr, 0, nullptr},
};

} // namespace

void init_input_type() {
    input_type::define("trestle.InputStream", {
        {Py_tp_iter, reinterpret_cast<void*>(input_type::self_iter)},
        {Py_tp_iternext, reinterpret_cast<void*>(input_iternext)},
        {Py_tp_methods, input_methods},
        {Py_tp_doc, const_cast<char*>("wsgi.input: the request body, streamed.")},
    });
}

py::ref new_input(net::app_port* ex) {
    py::ref o = input_type::make();
    if (!o) return {};
    input_state& st = state(o.get());
    st.ex = ex;
    auto& h = ex->head();
    st.known_length = !h.chunked;
    st.remaining = h.chunked ? 0 : h.content_length.value_or(0);
    return o;
}

void detach_input(py::borrowed input) {
    input_state& st = state(input);
    net::app_port* ex;
    {
        std::lock_guard lock(st.m);
        ex = std::exchange(st.ex, nullptr);
    }
    if (!ex) return;
    // Threads the app left reading: wake them (their read fails), and let
    // them all leave the exchange before the request may end and free it.
    ex->cancel_reads();
    {
        std::lock_guard lock(st.m);
        if (st.readers == 0) return;
    }
    py::gil_release nogil;   // a woken reader needs the GIL to return
    std::unique_lock lock(st.m);
    st.cv.wait(lock, [&] { return st.readers == 0; });
}

} // namespace trestle::wsgi
