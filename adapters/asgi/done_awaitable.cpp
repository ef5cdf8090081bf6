// An awaitable whose result is already known. send() returns one whenever the
// bytes fit under the high-water mark, and receive() when the body is already
// here, so the common request never suspends or touches the loop.
#include "adapters/asgi/http_call.hpp"

namespace trestle::asgi {

namespace {

struct done_object {
    PyObject_HEAD
    PyObject* value;   // owned; null once delivered
};

PyTypeObject* done_type = nullptr;   // owned for the process

PyObject* done_await(PyObject* self) {
    Py_INCREF(self);
    return self;
}

PyObject* done_next(PyObject* self) {
    auto* o = reinterpret_cast<done_object*>(self);
    PyObject* v = o->value;
    o->value = nullptr;
    if (v && v != Py_None) {
        // StopIteration(value) ends the await with `value`. A tuple would be
        // unpacked as arguments, so wrap it explicitly.
        PyObject* exc = PyObject_CallOneArg(PyExc_StopIteration, v);
        Py_DECREF(v);
        if (exc) {
            PyErr_SetObject(PyExc_StopIteration, exc);
            Py_DECREF(exc);
        }
        return nullptr;
    }
    Py_XDECREF(v);
    return nullptr;   // StopIteration with None
}

PyObject* done_send(PyObject* self, PyObject*) { return done_next(self); }

void done_dealloc(PyObject* self) {
    Py_XDECREF(reinterpret_cast<done_object*>(self)->value);
    PyTypeObject* tp = Py_TYPE(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

PyMethodDef done_methods[] = {
    {"send", done_send, METH_O, nullptr},
    {nullptr, nullptr, 0, nullptr},
};

} // namespace

void init_done_type() {
    static PyType_Slot slots[] = {
        {Py_am_await, reinterpret_cast<void*>(done_await)},
        {Py_tp_iter, reinterpret_cast<void*>(done_await)},
        {Py_tp_iternext, reinterpret_cast<void*>(done_next)},
        {Py_tp_dealloc, reinterpret_cast<void*>(done_dealloc)},
        {Py_tp_methods, done_methods},
        {0, nullptr},
    };
    static PyType_Spec spec = {"trestle.Done", sizeof(done_object), 0,
                               Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION, slots};
    done_type = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&spec));
}

py::ref done_awaitable(PyObject* value) {
    auto* o = PyObject_New(done_object, done_type);
    if (!o) return {};
    Py_XINCREF(value);
    o->value = value;
    return py::ref::steal(reinterpret_cast<PyObject*>(o));
}

} // namespace trestle::asgi
