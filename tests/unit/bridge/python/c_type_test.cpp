// py::c_type: an instance holds a C++ value, constructed when the object is
// made and destroyed with it; the type's own reference count is balanced.
#include "bridge/python/c_type.hpp"

#include <gtest/gtest.h>

namespace trestle::py {
namespace {

int alive = 0;

struct counted {
    explicit counted(ref h) noexcept : held(std::move(h)) { ++alive; }
    counted() noexcept { ++alive; }
    ~counted() { --alive; }
    ref held;
};

using plain_type = c_type<counted>;

struct collected {
    counted inner;
};
using gc_type = c_type<collected, true>;

int gc_traverse(PyObject* self, visitproc visit, void* arg) {
    Py_VISIT(gc_type::of(self).inner.held.get());
    Py_VISIT(Py_TYPE(self));
    return 0;
}

int gc_clear(PyObject* self) {
    gc_type::of(self).inner.held.reset();
    return 0;
}

void define_types() {
    plain_type::define("trestle_test.Plain", {{Py_tp_doc, const_cast<char*>("A test type.")}});
    gc_type::define("trestle_test.Collected", {
        {Py_tp_traverse, reinterpret_cast<void*>(gc_traverse)},
        {Py_tp_clear, reinterpret_cast<void*>(gc_clear)},
    }, Py_TPFLAGS_DEFAULT);
}

TEST(c_type, the_value_lives_and_dies_with_its_object) {
    define_types();
    ref payload = ref::steal(PyList_New(0));
    Py_ssize_t type_refs = Py_REFCNT(plain_type::type().get());
    {
        ref o = plain_type::make(payload.copy());
        ASSERT_TRUE(o);
        EXPECT_EQ(alive, 1);
        EXPECT_TRUE(plain_type::is(o.get()));
        EXPECT_FALSE(plain_type::is(payload.get()));
        EXPECT_EQ(plain_type::of(o.get()).held.get(), payload.get());
        EXPECT_EQ(Py_REFCNT(payload.get()), 2);
        EXPECT_EQ(Py_REFCNT(plain_type::type().get()), type_refs + 1);   // an instance holds its type
        ref it = ref::steal(plain_type::self_iter(o.get()));   // tp_iter: itself, one more owner
        EXPECT_EQ(it.get(), o.get());
        EXPECT_EQ(Py_REFCNT(o.get()), 2);
    }
    EXPECT_EQ(alive, 0);
    EXPECT_EQ(Py_REFCNT(payload.get()), 1);
    EXPECT_EQ(Py_REFCNT(plain_type::type().get()), type_refs);
}

TEST(c_type, not_made_from_python_unless_asked) {
    define_types();
    ref r = ref::steal(PyObject_CallNoArgs(plain_type::type()));
    EXPECT_FALSE(r);
    EXPECT_TRUE(PyErr_ExceptionMatches(PyExc_TypeError));
    PyErr_Clear();
    EXPECT_EQ(alive, 0);
}

TEST(c_type, a_collected_type_made_from_python_frees_its_cycles) {
    define_types();
    ref o = ref::steal(PyObject_CallNoArgs(gc_type::type()));
    ASSERT_TRUE(o);
    EXPECT_EQ(alive, 1);
    // o -> list -> o: only the collector can free it.
    ref list = ref::steal(PyList_New(0));
    ASSERT_EQ(PyList_Append(list.get(), o.get()), 0);
    gc_type::of(o.get()).inner.held = std::move(list);
    o.reset();
    EXPECT_EQ(alive, 1);
    ref gc = ref::steal(PyImport_ImportModule("gc"));
    ref collect = ref::steal(PyObject_GetAttrString(gc.get(), "collect"));
    ref n = ref::steal(PyObject_CallNoArgs(collect.get()));
    ASSERT_TRUE(n);
    EXPECT_EQ(alive, 0);
}

} // namespace
} // namespace trestle::py
