#pragma once
// Method calls by interned name. PyObject_CallMethod(obj, "name", fmt, ...)
// builds a str from the C string and an argument tuple from the format on
// every call (about a thousand instructions, measured with callgrind); these
// go through the vectorcall protocol with a name interned once.
#include "bridge/python/ref.hpp"

namespace trestle::py {

// An interned str that lives for the process (never released: the names are
// process-wide constants, and interned strs outlive finalization anyway).
class name {
public:
    explicit name(const char* s) : s_(s) {}
    // The interned object; made on first use, with the GIL held.
    borrowed get() {
        if (!o_) o_ = PyUnicode_InternFromString(s_);
        return o_;
    }

private:
    const char* s_;
    PyObject* o_ = nullptr;
};

// obj.<method>(args...): a new reference, or null with the exception set.
template <class... Args>
ref call_method(borrowed obj, name& method, Args... args) {
    PyObject* stack[] = {obj, args...};
    return ref::steal(PyObject_VectorcallMethod(method.get(), stack, sizeof...(Args) + 1, nullptr));
}

} // namespace trestle::py
