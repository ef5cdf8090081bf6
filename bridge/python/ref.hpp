#pragma once
// A small RAII layer over the CPython C API. A reference Trestle owns is a
// `ref`; one it borrows is a `borrowed` where the type says it better than a
// comment (what a function returns or keeps), else a PyObject* with a
// comment saying it is borrowed.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "bridge/observability/gil_wait.hpp"

#include <string>
#include <utility>

namespace trestle::py {

// An owned (strong) reference. Destroying it decrefs, so it must only be
// destroyed by a thread that holds the GIL.
//
// Move-only: a second owner is a second incref, so it is spelled out with
// copy() (or ref::borrow) where one is really wanted, and never made by
// accident when a ref is passed by value or captured in a lambda.
class ref {
public:
    ref() noexcept = default;
    ref(const ref&) = delete;
    ref& operator=(const ref&) = delete;
    ref(ref&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
    ref& operator=(ref&& o) noexcept {
        // The old object goes last: its destructor may run Python code that
        // looks at this ref (Py_SETREF's order). Safe for self-move too.
        PyObject* old = std::exchange(p_, std::exchange(o.p_, nullptr));
        Py_XDECREF(old);
        return *this;
    }
    ~ref() { Py_XDECREF(p_); }

    // Takes ownership of a new reference (the usual API return value).
    static ref steal(PyObject* p) noexcept { ref r; r.p_ = p; return r; }
    // Adds a reference to a borrowed pointer.
    static ref borrow(PyObject* p) noexcept { Py_XINCREF(p); return steal(p); }
    // A second owner of the same object (one incref).
    ref copy() const noexcept { return borrow(p_); }

    PyObject* get() const noexcept { return p_; }
    PyObject* release() noexcept { return std::exchange(p_, nullptr); }
    void reset() noexcept { Py_CLEAR(p_); }
    explicit operator bool() const noexcept { return p_ != nullptr; }

private:
    PyObject* p_ = nullptr;
};

// A borrowed reference: a view of an object that something else keeps
// alive (a ref, a container, a C type's instance, the interpreter). One
// pointer and no reference counting, so it is passed by value. It must not
// outlive its owner, and is no reason for the object to live: copy() makes
// an owner. It converts to PyObject* for the C API, and is made from a raw
// pointer or from a ref, but not from a temporary ref, which would leave it
// dangling at the end of the statement. Through a C variadic call
// (PyObject_CallFunctionObjArgs, Py_BuildValue, PyErr_Format) pass .get():
// no conversion happens there.
class borrowed {
public:
    constexpr borrowed() noexcept = default;
    constexpr borrowed(PyObject* p) noexcept : p_(p) {}
    borrowed(const ref& r) noexcept : p_(r.get()) {}
    borrowed(ref&&) = delete;

    constexpr PyObject* get() const noexcept { return p_; }
    constexpr operator PyObject*() const noexcept { return p_; }
    ref copy() const noexcept { return ref::borrow(p_); }

private:
    PyObject* p_ = nullptr;
};

// The GIL, in scopes. Every thread that runs Python takes and drops it
// through these, so each acquisition is a visible scope that can be counted.

// Releases the GIL for a scope (a blocking wait) on a thread that holds it.
class gil_release {
public:
    gil_release() noexcept : state_(PyEval_SaveThread()) {}
    ~gil_release() {
        metrics::timed_gil([s = state_] { PyEval_RestoreThread(s); });
    }
    gil_release(const gil_release&) = delete;
    gil_release& operator=(const gil_release&) = delete;

private:
    PyThreadState* state_;
};

// Acquires the GIL for a scope on any thread, making a thread state if the
// thread has none. The loop thread holds one for its whole life; elsewhere
// it serves startup, shutdown and the watchdogs, never a request: a thread
// without a state of its own would make and drop one each time.
class gil_ensure {
public:
    gil_ensure() noexcept : state_(PyGILState_Ensure()) {}
    ~gil_ensure() { PyGILState_Release(state_); }
    gil_ensure(const gil_ensure&) = delete;
    gil_ensure& operator=(const gil_ensure&) = delete;

private:
    PyGILState_STATE state_;
};

// The calling thread's own thread state, made once and kept for the
// thread's life (the pool threads): made and destroyed without the GIL,
// which gil_restore takes with it.
class thread_state {
public:
    thread_state() noexcept : gstate_(PyGILState_Ensure()), state_(PyEval_SaveThread()) {}
    // The outermost PyGILState_Release deletes the state and drops the GIL.
    ~thread_state() {
        PyEval_RestoreThread(state_);
        PyGILState_Release(gstate_);
    }
    thread_state(const thread_state&) = delete;
    thread_state& operator=(const thread_state&) = delete;

private:
    friend class gil_restore;
    PyGILState_STATE gstate_;
    PyThreadState* state_;
};

// Holds the GIL for a scope with a thread state the thread keeps.
class gil_restore {
public:
    explicit gil_restore(const thread_state& t) noexcept : state_(t.state_) {
        metrics::timed_gil([s = state_] { PyEval_RestoreThread(s); });
    }
    ~gil_restore() { PyEval_SaveThread(); }
    gil_restore(const gil_restore&) = delete;
    gil_restore& operator=(const gil_restore&) = delete;

private:
    PyThreadState* state_;
};

// dict[key] = value for a value just made: `value` is its new reference,
// or null when making it failed (the exception is set). The dict takes a
// reference of its own. False on either failure.
inline bool set_item(PyObject* dict, PyObject* key, ref value) {
    return value && PyDict_SetItem(dict, key, value.get()) == 0;
}

// str(o) as UTF-8 for a log line or an error message: lone surrogates are
// escaped, and no exception is left set. PyUnicode_AsUTF8 returns NULL for a
// str holding a lone surrogate (an app's lifespan failure message, say),
// and a std::string made from that NULL is undefined behaviour.
inline std::string text(borrowed o, const char* fallback = "?") {
    if (!o) return fallback;
    ref s = ref::steal(PyObject_Str(o));
    ref b = ref::steal(s ? PyUnicode_AsEncodedString(s.get(), "utf-8", "backslashreplace") : nullptr);
    if (!b) {
        PyErr_Clear();
        return fallback;
    }
    return std::string(PyBytes_AS_STRING(b.get()), static_cast<std::size_t>(PyBytes_GET_SIZE(b.get())));
}

} // namespace trestle::py
