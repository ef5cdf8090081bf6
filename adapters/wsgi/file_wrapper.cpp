// wsgi.file_wrapper (PEP 3333 "Optional Platform-Specific File Handling").
// As an iterable it reads blocks through Python, so it works for any
// file-like object; when the app returns one over a regular file, the
// handler sends the file with sendfile(2) instead and never copies it
// through Python.
#include "adapters/wsgi/wsgi.hpp"

#include "bridge/python/c_type.hpp"

#include <structmember.h>
#include <climits>
#include <sys/stat.h>
#include <type_traits>
#include <unistd.h>

namespace trestle::wsgi {

namespace {

struct file_wrapper {
    py::ref filelike;
    Py_ssize_t blksize = 0;
};

// Collected: an app's file-like object may refer back to the wrapper.
using wrapper_type = py::c_type<file_wrapper, true>;

int wrapper_init(PyObject* self, PyObject* args, PyObject* kwargs) {
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
    file_wrapper& w = wrapper_type::of(self);
    w.filelike = py::ref::borrow(filelike);
    w.blksize = blksize;
    return 0;
}

PyObject* wrapper_iternext(PyObject* self) {
    file_wrapper& w = wrapper_type::of(self);
    if (!w.filelike) return nullptr;
    py::ref data = py::ref::steal(PyObject_CallMethod(w.filelike.get(), "read", "n", w.blksize));
    if (!data || (PyBytes_Check(data.get()) && PyBytes_GET_SIZE(data.get()) == 0)) return nullptr;
    return data.release();
}

PyObject* wrapper_close(PyObject* self, PyObject*) {
    file_wrapper& w = wrapper_type::of(self);
    if (w.filelike && PyObject_HasAttrString(w.filelike.get(), "close")) {
        py::ref r = py::ref::steal(PyObject_CallMethod(w.filelike.get(), "close", nullptr));
        if (!r) return nullptr;
    }
    Py_RETURN_NONE;
}

int wrapper_traverse(PyObject* self, visitproc visit, void* arg) {
    Py_VISIT(wrapper_type::of(self).filelike.get());
    Py_VISIT(Py_TYPE(self));
    return 0;
}

int wrapper_clear(PyObject* self) {
    wrapper_type::of(self).filelike.reset();
    return 0;
}

PyMethodDef wrapper_methods[] = {
    {"close", wrapper_close, METH_NOARGS, "Close the wrapped file."},
    {nullptr, nullptr, 0, nullptr},
};

// A ref is its one PyObject*, so T_OBJECT reads the member in place.
static_assert(std::is_standard_layout_v<file_wrapper> && sizeof(py::ref) == sizeof(PyObject*));
PyMemberDef wrapper_members[] = {
    {"filelike", T_OBJECT, wrapper_type::value_offset() + offsetof(file_wrapper, filelike), READONLY, nullptr},
    {"blksize", T_PYSSIZET, wrapper_type::value_offset() + offsetof(file_wrapper, blksize), READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr},
};

} // namespace

void init_file_wrapper_type() {
    // Made from Python (tp_new, then tp_init), as PEP 3333 has it.
    wrapper_type::define("trestle.FileWrapper", {
        {Py_tp_init, reinterpret_cast<void*>(wrapper_init)},
        {Py_tp_iter, reinterpret_cast<void*>(wrapper_type::self_iter)},
        {Py_tp_iternext, reinterpret_cast<void*>(wrapper_iternext)},
        {Py_tp_traverse, reinterpret_cast<void*>(wrapper_traverse)},
        {Py_tp_clear, reinterpret_cast<void*>(wrapper_clear)},
        {Py_tp_methods, wrapper_methods},
        {Py_tp_members, wrapper_members},
        {Py_tp_doc, const_cast<char*>("FileWrapper(filelike, blksize=8192): wsgi.file_wrapper.")},
    }, Py_TPFLAGS_DEFAULT);
}

py::borrowed file_wrapper_type() { return wrapper_type::type(); }

std::optional<file_region> file_wrapper_region(PyObject* obj) {
    if (!wrapper_type::is(obj)) return std::nullopt;
    file_wrapper& w = wrapper_type::of(obj);
    if (!w.filelike) return std::nullopt;
    py::ref fileno = py::ref::steal(PyObject_CallMethod(w.filelike.get(), "fileno", nullptr));
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
    py::ref pos = py::ref::steal(PyObject_CallMethod(w.filelike.get(), "tell", nullptr));
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
