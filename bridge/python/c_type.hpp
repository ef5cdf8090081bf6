#pragma once
// Python types implemented in C++. c_type<T> is the PyType_FromSpec
// boilerplate, once: an instance is PyObject_HEAD followed by a C++ value
// T, constructed when the object is made and destroyed by tp_dealloc, so
// T's members (a py::ref, a unique_ptr, a mutex) clean up as C++ members do
// and no slot of an adapter counts references by hand. The type is a heap
// type made once, with the GIL, and kept for the process.
#include "bridge/python/ref.hpp"

#include <cstddef>
#include <initializer_list>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

namespace trestle::py {

// T names the Python type, one per T, so it is a struct of the adapter's
// own (in an unnamed namespace). `gc`: instances take part in cyclic
// garbage collection (T holds objects an app can reach a cycle through);
// the slots then include Py_tp_traverse and Py_tp_clear.
template <class T, bool gc = false>
class c_type {
public:
    struct object {
        PyObject_HEAD
        T value;
    };

    // Makes the type; later calls do nothing. `name` ("trestle.X") must be a
    // literal: Python keeps the pointer. `slots` are the type's own, without
    // the terminator: Py_tp_dealloc is added, and Py_tp_new (T
    // default-constructed, for Py_tp_init to fill) unless `flags` forbid
    // making one from Python.
    static void define(const char* name, std::initializer_list<PyType_Slot> slots,
                       unsigned long flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION) {
        if (type_) return;
        std::vector<PyType_Slot> all(slots);
        all.push_back({Py_tp_dealloc, reinterpret_cast<void*>(&dealloc)});
        if (!(flags & Py_TPFLAGS_DISALLOW_INSTANTIATION)) {
            // Never object's tp_new, which would leave T unconstructed.
            if constexpr (std::is_default_constructible_v<T>)
                all.push_back({Py_tp_new, reinterpret_cast<void*>(&make_from_python)});
            else
                Py_FatalError("trestle: a type made from Python needs a default-constructible value");
        }
        all.push_back({0, nullptr});
        if (gc) flags |= Py_TPFLAGS_HAVE_GC;
        PyType_Spec spec = {name, static_cast<int>(sizeof(object)), 0, static_cast<unsigned int>(flags), all.data()};
        type_ = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&spec));
        if (!type_) Py_FatalError("trestle: cannot make a Python type");
    }

    // A new instance holding T{args...} (an aggregate) or T(args...); null
    // with MemoryError set.
    template <class... A>
    static ref make(A&&... args) {
        static_assert(!gc, "a collected type is made from Python (Py_tp_init)");
        object* o = PyObject_New(object, type_);
        if (!o) return {};
        void* at = &o->value;
        if constexpr (std::is_aggregate_v<T>) {
            static_assert(noexcept(T{std::forward<A>(args)...}), "nothing may throw between allocation and steal");
            ::new (at) T{std::forward<A>(args)...};
        } else {
            static_assert(std::is_nothrow_constructible_v<T, A&&...>, "nothing may throw between allocation and steal");
            ::new (at) T(std::forward<A>(args)...);
        }
        return ref::steal(reinterpret_cast<PyObject*>(o));
    }

    // The value inside an instance of this type.
    static T& of(PyObject* self) noexcept { return reinterpret_cast<object*>(self)->value; }
    static bool is(PyObject* o) noexcept { return Py_TYPE(o) == type_; }
    static borrowed type() noexcept { return reinterpret_cast<PyObject*>(type_); }
    // Where T starts in an instance, for a PyMemberDef.
    static constexpr Py_ssize_t value_offset() noexcept { return offsetof(object, value); }

    // Py_tp_iter (or Py_am_await) of an object that is its own iterator.
    static PyObject* self_iter(PyObject* self) noexcept { return ref::borrow(self).release(); }

private:
    static PyObject* make_from_python(PyTypeObject* type, PyObject*, PyObject*) {
        static_assert(std::is_nothrow_default_constructible_v<T>);
        PyObject* self = type->tp_alloc(type, 0);   // zeroed, and tracked if gc
        if (self) ::new (static_cast<void*>(&of(self))) T();
        return self;
    }

    static void dealloc(PyObject* self) {
        PyTypeObject* tp = Py_TYPE(self);
        if constexpr (gc) PyObject_GC_UnTrack(self);
        std::destroy_at(&of(self));
        tp->tp_free(self);
        Py_DECREF(tp);   // each instance of a heap type holds its type
    }

    static inline PyTypeObject* type_ = nullptr;   // owned for the process
};

} // namespace trestle::py
