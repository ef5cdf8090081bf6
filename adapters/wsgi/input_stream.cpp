// wsgi.input: the request body as a stream (PEP 3333). Reads come from the
// exchange; when no bytes are there yet the GIL is released while the io
// thread fetches more, so a slow upload never blocks other Python threads.
// Memory is bounded by what the app asks for, never by the body size.
#include "adapters/wsgi/wsgi.hpp"

#include "bridge/net/exchange.hpp"

#include <algorithm>
#include <cstring>
#include <string>

namespace trestle::wsgi {

namespace {

struct input_object {
    PyObject_HEAD
    net::exchange* ex;    // null once the request is over
    std::string* buf;     // received, not yet returned (look-ahead for readline)
    std::size_t pos;
    std::uint64_t remaining;   // body bytes still to come when the length is known
    bool known_length;
    bool eof;
};

PyTypeObject* input_type = nullptr;   // owned for the process
constexpr std::size_t default_chunk = 64 * 1024;

std::size_t avail(input_object* o) { return o->buf->size() - o->pos; }

// Adds at least one byte to the buffer, or reaches end of body.
// Returns -1 with an exception set, 0 at end of body, else bytes added.
Py_ssize_t fill(input_object* o, std::size_t want) {
    if (!o->ex) {
        PyErr_SetString(PyExc_ValueError, "wsgi.input used after the request ended");
        return -1;
    }
    if (o->eof) return 0;
    if (o->pos == o->buf->size()) {
        o->buf->clear();
        o->pos = 0;
    }
    std::size_t chunk = std::max<std::size_t>(want, 1);
    if (o->known_length) chunk = std::min<std::uint64_t>(std::max<std::uint64_t>(o->remaining, 1), std::max(chunk, default_chunk));
    chunk = std::min(chunk, std::size_t{16} << 20);
    std::size_t old = o->buf->size();
    o->buf->resize(old + chunk);
    char* dst = o->buf->data() + old;
    auto got = o->ex->try_read(dst, chunk);
    if (!got) {
        net::exchange* ex = o->ex;
        Py_BEGIN_ALLOW_THREADS
        got = ex->read(dst, chunk);
        Py_END_ALLOW_THREADS
    }
    if (!got) {
        o->buf->resize(old);
        PyErr_SetString(PyExc_OSError, "the request body could not be read (client gone, timeout or limit)");
        return -1;
    }
    o->buf->resize(old + *got);
    if (*got == 0) o->eof = true;
    if (o->known_length) o->remaining -= std::min<std::uint64_t>(o->remaining, *got);
    return static_cast<Py_ssize_t>(*got);
}

PyObject* take(input_object* o, std::size_t n) {
    n = std::min(n, avail(o));
    PyObject* r = PyBytes_FromStringAndSize(o->buf->data() + o->pos, static_cast<Py_ssize_t>(n));
    o->pos += n;
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
    auto* o = reinterpret_cast<input_object*>(self);
    Py_ssize_t size;
    if (!parse_size(args, nargs, size, "read")) return nullptr;
    if (size < 0) {
        for (;;) {
            Py_ssize_t r = fill(o, default_chunk);
            if (r < 0) return nullptr;
            if (r == 0) break;
        }
        return take(o, avail(o));
    }
    while (avail(o) < static_cast<std::size_t>(size) && !o->eof) {
        if (fill(o, static_cast<std::size_t>(size) - avail(o)) < 0) return nullptr;
    }
    return take(o, static_cast<std::size_t>(size));
}

PyObject* readline_impl(input_object* o, Py_ssize_t size) {
    std::size_t scanned = 0;
    for (;;) {
        const char* start = o->buf->data() + o->pos;
        std::size_t n = avail(o);
        if (const void* nl = std::memchr(start + scanned, '\n', n - scanned)) {
            std::size_t len = static_cast<const char*>(nl) - start + 1;
            if (size >= 0) len = std::min(len, static_cast<std::size_t>(size));
            return take(o, len);
        }
        scanned = n;
        if (size >= 0 && n >= static_cast<std::size_t>(size)) return take(o, static_cast<std::size_t>(size));
        if (o->eof) return take(o, n);
        if (fill(o, 8192) < 0) return nullptr;
    }
}

PyObject* input_readline(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
    Py_ssize_t size;
    if (!parse_size(args, nargs, size, "readline")) return nullptr;
    return readline_impl(reinterpret_cast<input_object*>(self), size);
}

PyObject* input_readlines(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
    Py_ssize_t hint;
    if (!parse_size(args, nargs, hint, "readlines")) return nullptr;
    py::ref lines = py::ref::steal(PyList_New(0));
    if (!lines) return nullptr;
    Py_ssize_t total = 0;
    for (;;) {
        py::ref line = py::ref::steal(readline_impl(reinterpret_cast<input_object*>(self), -1));
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
    PyObject* line = readline_impl(reinterpret_cast<input_object*>(self), -1);
    if (line && PyBytes_GET_SIZE(line) == 0) {
        Py_DECREF(line);
        return nullptr;   // StopIteration
    }
    return line;
}

PyObject* input_self(PyObject* self) {
    Py_INCREF(self);
    return self;
}

PyObject* input_true(PyObject*, PyObject*) { Py_RETURN_TRUE; }

void input_dealloc(PyObject* self) {
    auto* o = reinterpret_cast<input_object*>(self);
    delete o->buf;
    PyTypeObject* tp = Py_TYPE(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

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
    static PyType_Slot slots[] = {
        {Py_tp_dealloc, reinterpret_cast<void*>(input_dealloc)},
        {Py_tp_iter, reinterpret_cast<void*>(input_self)},
        {Py_tp_iternext, reinterpret_cast<void*>(input_iternext)},
        {Py_tp_methods, input_methods},
        {Py_tp_doc, const_cast<char*>("wsgi.input: the request body, streamed.")},
        {0, nullptr},
    };
    static PyType_Spec spec = {"trestle.InputStream", sizeof(input_object), 0,
                               Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION, slots};
    input_type = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&spec));
}

py::ref new_input(net::exchange* ex) {
    auto* o = PyObject_New(input_object, input_type);
    if (!o) return {};
    o->ex = ex;
    o->buf = new std::string();
    o->pos = 0;
    o->eof = false;
    auto& h = ex->head();
    o->known_length = !h.chunked;
    o->remaining = h.chunked ? 0 : h.content_length.value_or(0);
    return py::ref::steal(reinterpret_cast<PyObject*>(o));
}

void detach_input(PyObject* input) {
    reinterpret_cast<input_object*>(input)->ex = nullptr;
}

} // namespace trestle::wsgi
