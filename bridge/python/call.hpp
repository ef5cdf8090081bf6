#pragma once
// Method calls by interned name. PyObject_CallMethod(obj, "name", fmt, ...)
// builds a str from the C string and an argument tuple from the format on
// every call (about a thousand instructions, measured with callgrind); these
// go through the vectorcall protocol with a name from py::names.
#include "bridge/python/names.hpp"
#include "bridge/python/ref.hpp"

namespace trestle::py {

// obj.<method>(args...), `method` an interned str (py::names::done, ...): a
// new reference, or null with the exception set.
template <class... Args>
ref call_method(borrowed obj, borrowed method, Args... args) {
    PyObject* stack[] = {obj, args...};
    return ref::steal(PyObject_VectorcallMethod(method, stack, sizeof...(Args) + 1, nullptr));
}

} // namespace trestle::py
