// runtime::task: the pool's and the loop's move-only job type.
#include "bridge/runtime/task.hpp"

#include "bridge/python/ref.hpp"

#include <gtest/gtest.h>

#include <array>
#include <memory>
#include <type_traits>

namespace trestle::runtime {
namespace {

static_assert(!std::is_copy_constructible_v<task>);
static_assert(std::is_nothrow_move_constructible_v<task>);

TEST(task, holds_a_callable_that_owns_a_python_reference) {
    py::ref list = py::ref::steal(PyList_New(0));
    PyObject* o = list.get();
    task t = [l = list.copy()] { PyList_Append(l.get(), Py_None); };
    EXPECT_EQ(Py_REFCNT(o), 2);
    task moved = std::move(t);
    EXPECT_FALSE(t);   // NOLINT(bugprone-use-after-move)
    EXPECT_EQ(Py_REFCNT(o), 2);
    moved();
    EXPECT_EQ(PyList_GET_SIZE(o), 1);
    moved = nullptr;   // the capture goes with it
    EXPECT_EQ(Py_REFCNT(o), 1);
}

TEST(task, small_and_large_callables_run_move_and_are_destroyed_once) {
    auto alive = std::make_shared<int>(0);
    int runs = 0;
    {
        task small = [alive, &runs] { ++runs; };   // in place
        std::array<char, 256> pad{};
        task large = [alive, &runs, pad] { runs += 1 + pad[0]; };   // on the heap
        EXPECT_EQ(alive.use_count(), 3);
        task a = std::move(small), b = std::move(large);
        EXPECT_EQ(alive.use_count(), 3);
        a();
        b();
        small = std::move(b);   // assign into a moved-from task
        small();
        EXPECT_EQ(alive.use_count(), 3);
    }
    EXPECT_EQ(runs, 3);
    EXPECT_EQ(alive.use_count(), 1);
}

} // namespace
} // namespace trestle::runtime
