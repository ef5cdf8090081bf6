// The GIL scopes: a thread that keeps its own state (thread_state) takes the
// GIL with it (gil_restore) as often as it likes, and it is the same state
// each time: no state is made per acquisition.
#include "bridge/python/ref.hpp"

#include <gtest/gtest.h>

#include <thread>

namespace trestle::py {
namespace {

TEST(gil, a_kept_thread_state_is_restored_in_each_scope) {
    gil_release main_nogil;   // the test runner's main thread owns the GIL
    PyThreadState* first = nullptr;
    PyThreadState* second = nullptr;
    bool held_outside = true, held_inside = false, released_inside = true;
    std::thread t([&] {
        thread_state python;
        held_outside = PyGILState_Check();
        {
            gil_restore gil(python);
            held_inside = PyGILState_Check();
            first = PyThreadState_Get();
            {
                gil_release nogil;
                released_inside = PyGILState_Check();
            }
        }
        {
            gil_restore gil(python);
            second = PyThreadState_Get();
        }
    });
    t.join();
    EXPECT_FALSE(held_outside);
    EXPECT_TRUE(held_inside);
    EXPECT_FALSE(released_inside);
    ASSERT_NE(first, nullptr);
    EXPECT_EQ(first, second);
}

TEST(gil, ensure_works_on_a_thread_without_a_state) {
    gil_release main_nogil;
    bool held = false;
    std::thread t([&] {
        gil_ensure gil;
        held = PyGILState_Check();
    });
    t.join();
    EXPECT_TRUE(held);
}

} // namespace
} // namespace trestle::py
