// wsgi.file_wrapper (PEP 3333 "Optional Platform-Specific File Handling").
// As an iterable it reads blocks through Python, so it works for any
// file-like object; when the app returns one over a regular file, the
// handler sends the file with sendfile(2) instead and never copies it
// through Python.
#include "adapters/wsgi/wsgi.hpp"

#include <structmember.h>
#include <climits>
#include <sys/stat.h>
#include <unistd.h>

namespace trestle::wsgi {

namespace {

struct file_wrapper_object {
    PyObject_HEAD
    PyObject* filelike;   // owned
    Py_ssize_t blksize;
};

PyTypeObject* wrapper_type = nullptr;   // owned for the process

int wrapper_init(PyObject* self, PyObject* args, PyObject* kwargs) {
    auto* o = reinterpret_cast<file_wrapper_object*>(self);
    static const char* kwlist[] = {"filelike", "blksize", nullptr};
    PyObject* filelike;   // borrowed
    Py_ssize_t blksize = 8192;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|n:FileWrapper", const_cast<char**>(kwlist), &filelike,
                                     &blksize))
        return -1;
    if (blksize <= 0) {
        PyErr_SetString(PyExc_ValueError, "blksize must be positive");
        return -1;
    }
    Py_INCREF(filelike);
    Py_XSETREF(o->filelike, filelike);
    o->blksize = blksize;
    return 0;
}

PyObject* wrapper_iternext(PyObject* self) {
    auto* o = reinterpret_cast<file_wrapper_object*>(self);
    if (!o->filelike) return nullptr;
    PyObject* data = PyObject_CallMethod(o->filelike, "read", "n", o->blksize);
    if (!data) return nullptr;
    if (PyBytes_Check(data) && PyBytes_GET_SIZE(data) == 0) {
        Py_DECREF(data);
        return nullptr;
    }
    return data;
}

PyObject* wrapper_iter(PyObject* self) {
    Py_INCREF(self);
    return self;
}

PyObject* wrapper_close(PyObject* self, PyObject*) {
    auto* o = reinterpret_cast<file_wrapper_object*>(self);
    if (o->filelike && PyObject_HasAttrString(o->filelike, "close")) {
        PyObject* r = PyObject_CallMethod(o->filelike, "close", nullptr);
        if (!r) return nullptr;
        Py_DECREF(r);
    }
    Py_RETURN_NONE;
}

int wrapper_traverse(PyObject* self, visitproc visit, void* arg) {
    Py_VISIT(reinterpret_cast<file_wrapper_object*>(self)->filelike);
    Py_VISIT(Py_TYPE(self));
    return 0;
}

int wrapper_clear(PyObject* self) {
    Py_CLEAR(reinterpret_cast<file_wrapper_object*>(self)->filelike);
    return 0;
}

void wrapper_dealloc(PyObject* self) {
    PyObject_GC_UnTrack(self);
    wrapper_clear(self);
    PyTypeObject* tp = Py_TYPE(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

PyMethodDef wrapper_methods[] = {
    {"close", wrapper_close, METH_NOARGS, "Close the wrapped file."},
    {nullptr, nullptr, 0, nullptr},
};

PyMemberDef wrapper_members[] = {
    {"filelike", T_OBJECT, offsetof(file_wrapper_object, filelike), READONLY, nullptr},
    {"blksize", T_PYSSIZET, offsetof(file_wrapper_object, blksize), READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr},
};

} // namespace

void init_file_wrapper_type() {
    static PyType_Slot slots[] = {
        {Py_tp_init, reinterpret_cast<void*>(wrapper_init)},
        {Py_tp_iter, reinterpret_cast<void*>(wrapper_iter)},
        {Py_tp_iternext, reinterpret_cast<void*>(wrapper_iternext)},
        {Py_tp_traverse, reinterpret_cast<void*>(wrapper_traverse)},
        {Py_tp_clear, reinterpret_cast<void*>(wrapper_clear)},
        {Py_tp_dealloc, reinterpret_cast<void*>(wrapper_dealloc)},
        {Py_tp_methods, wrapper_methods},
        {Py_tp_members, wrapper_members},
        {Py_tp_new, reinterpret_cast<void*>(PyType_GenericNew)},
        {Py_tp_doc, const_cast<char*>("FileWrapper(filelike, blksize=8192): wsgi.file_wrapper.")},
        {0, nullptr},
    };
    static PyType_Spec spec = {"trestle.FileWrapper", sizeof(file_wrapper_object), 0,
                               Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, slots};
    wrapper_type = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&spec));
}

py::borrowed file_wrapper_type() { return reinterpret_cast<PyObject*>(wrapper_type); }

std::optional<file_region> file_wrapper_region(PyObject* obj) {
    if (Py_TYPE(obj) != wrapper_type) return std::nullopt;
    auto* o = reinterpret_cast<file_wrapper_object*>(obj);
    if (!o->filelike) return std::nullopt;
    py::ref fileno = py::ref::steal(PyObject_CallMethod(o->filelike, "fileno", nullptr));
    if (!fileno) {
        PyErr_Clear();   // BytesIO and friends: iterate instead
        return std::nullopt;
    }
    // The app's value, range-checked before it becomes a descriptor: a cast
    // alone turned 2**32 + 1 into 1, and the server sent its own stdout.
    long v = PyLong_AsLong(fileno.get());
    if (v < 0 || v > INT_MAX || PyErr_Occurred()) {
        PyErr_Clear();
        return std::nullopt;
    }
    int fd = static_cast<int>(v);
    struct stat st{};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
    // tell() accounts for Python-side buffering, unlike lseek on the fd.
    py::ref pos = py::ref::steal(PyObject_CallMethod(o->filelike, "tell", nullptr));
    if (!pos) {
        PyErr_Clear();
        return std::nullopt;
    }
    long long offset = PyLong_AsLongLong(pos.get());
    if (offset < 0 || PyErr_Occurred()) {
        PyErr_Clear();
        return std::nullopt;
    }
    return file_region{fd, static_cast<std::uint64_t>(offset), static_cast<std::uint64_t>(st.st_size)};
}

} // namespace trestle::wsgi
