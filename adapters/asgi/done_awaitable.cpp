// An awaitable whose result is already known. send() returns one whenever the
// bytes fit under the high-water mark, and receive() when the body is already
// here, so the common request never suspends or touches the loop.
#include "adapters/asgi/http_call.hpp"

#include "bridge/python/c_type.hpp"

namespace trestle::asgi {

namespace {

struct done_value {
    py::ref value;   // null once delivered
};

using done_type = py::c_type<done_value>;

PyObject* done_next(PyObject* self) {
    py::ref v = std::move(done_type::of(self).value);
    if (v && v.get() != Py_None) {
        // StopIteration(value) ends the await with `value`. A tuple would be
        // unpacked as arguments, so wrap it explicitly.
        py::ref exc = py::ref::steal(PyObject_CallOneArg(PyExc_StopIteration, v.get()));
        if (exc) PyErr_SetObject(PyExc_StopIteration, exc.get());
    }
    return nullptr;   // StopIteration with None, or the one set above
}

PyObject* done_send(PyObject* self, PyObject*) { return done_next(self); }

PyMethodDef done_methods[] = {
    {"send", done_send, METH_O, nullptr},
    {nullptr, nullptr, 0, nullptr},
};

} // namespace

void init_done_type() {
    done_type::define("trestle.Done", {
        {Py_am_await, reinterpret_cast<void*>(done_type::self_iter)},
        {Py_tp_iter, reinterpret_cast<void*>(done_type::self_iter)},
        {Py_tp_iternext, reinterpret_cast<void*>(done_next)},
        {Py_tp_methods, done_methods},
    });
}

py::ref done_awaitable(PyObject* value) { return done_type::make(py::ref::borrow(value)); }

} // namespace trestle::asgi
