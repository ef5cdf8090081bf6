// py::ref: one owner per reference. A second owner is spelled copy(); a
// copy by accident does not compile. py::borrowed: a view that owns nothing.
#include "bridge/python/ref.hpp"

#include <gtest/gtest.h>

#include <type_traits>
#include <utility>

namespace trestle::py {
namespace {

static_assert(!std::is_copy_constructible_v<ref>, "a second owner must be an explicit copy()");
static_assert(!std::is_copy_assignable_v<ref>, "a second owner must be an explicit copy()");
static_assert(std::is_nothrow_move_constructible_v<ref>);
static_assert(std::is_nothrow_move_assignable_v<ref>);
static_assert(sizeof(ref) == sizeof(PyObject*), "a ref is one pointer");

static_assert(std::is_trivially_copyable_v<borrowed>, "a borrowed is passed like a pointer");
static_assert(sizeof(borrowed) == sizeof(PyObject*));
static_assert(std::is_constructible_v<borrowed, const ref&>);
static_assert(!std::is_constructible_v<borrowed, ref&&>, "a view of a temporary ref would dangle");
static_assert(std::is_convertible_v<borrowed, PyObject*>);

// A fresh list: never immortal, and nobody else holds it.
ref fresh() { return ref::steal(PyList_New(0)); }

TEST(ref, steal_takes_the_reference_it_is_given) {
    ref r = fresh();
    ASSERT_TRUE(r);
    EXPECT_EQ(Py_REFCNT(r.get()), 1);
}

TEST(ref, borrow_and_copy_add_one_owner_each) {
    ref a = fresh();
    ref b = ref::borrow(a.get());
    EXPECT_EQ(b.get(), a.get());
    EXPECT_EQ(Py_REFCNT(a.get()), 2);
    {
        ref c = a.copy();
        EXPECT_EQ(c.get(), a.get());
        EXPECT_EQ(Py_REFCNT(a.get()), 3);
    }
    EXPECT_EQ(Py_REFCNT(a.get()), 2);
}

TEST(ref, copy_of_an_empty_ref_is_empty) {
    ref empty;
    EXPECT_FALSE(empty.copy());
    EXPECT_FALSE(ref::borrow(nullptr));
}

TEST(ref, move_transfers_without_touching_the_count) {
    ref a = fresh();
    PyObject* o = a.get();
    ref b = std::move(a);
    EXPECT_FALSE(a);   // NOLINT(bugprone-use-after-move): moved-from is empty by contract
    EXPECT_EQ(b.get(), o);
    EXPECT_EQ(Py_REFCNT(o), 1);
}

TEST(ref, move_assignment_releases_what_it_held) {
    ref keep = fresh();
    ref target = keep.copy();
    ASSERT_EQ(Py_REFCNT(keep.get()), 2);
    target = fresh();
    EXPECT_EQ(Py_REFCNT(keep.get()), 1);
    EXPECT_EQ(Py_REFCNT(target.get()), 1);
}

TEST(ref, self_move_assignment_keeps_the_object) {
    ref a = fresh();
    PyObject* o = a.get();
    ref& alias = a;
    a = std::move(alias);
    EXPECT_EQ(a.get(), o);
    EXPECT_EQ(Py_REFCNT(o), 1);
}

TEST(ref, release_hands_the_reference_over_and_reset_drops_it) {
    ref a = fresh();
    ref keep = a.copy();
    PyObject* raw = a.release();
    EXPECT_FALSE(a);
    EXPECT_EQ(Py_REFCNT(raw), 2);
    ref back = ref::steal(raw);
    back.reset();
    EXPECT_FALSE(back);
    EXPECT_EQ(Py_REFCNT(keep.get()), 1);
}

TEST(borrowed, views_without_owning) {
    ref owner = fresh();
    borrowed b = owner;
    borrowed again = b;
    PyObject* raw = again;
    EXPECT_EQ(raw, owner.get());
    EXPECT_EQ(b.get(), owner.get());
    EXPECT_EQ(Py_REFCNT(owner.get()), 1);
    EXPECT_FALSE(borrowed{}.get());
}

TEST(borrowed, copy_makes_an_owner) {
    ref owner = fresh();
    borrowed b = owner;
    ref second = b.copy();
    EXPECT_EQ(second.get(), owner.get());
    EXPECT_EQ(Py_REFCNT(owner.get()), 2);
    second.reset();
    EXPECT_EQ(Py_REFCNT(owner.get()), 1);
    EXPECT_FALSE(borrowed{}.copy());
}

} // namespace
} // namespace trestle::py
