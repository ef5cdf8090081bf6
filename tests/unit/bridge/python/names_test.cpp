// py::names: every name is made at start, interned, and is the str it says.
#include "bridge/python/names.hpp"

#include "bridge/python/ref.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <set>

namespace trestle::py {
namespace {

struct entry {
    const char* id;
    PyObject* const* name;
    const char* text;
};

#define TRESTLE_PY_NAME_ENTRY(id, text) entry{#id, &names::id, text},
const entry table[] = {TRESTLE_PY_NAMES(TRESTLE_PY_NAME_ENTRY)};
#undef TRESTLE_PY_NAME_ENTRY

TEST(names, each_is_an_interned_str_of_its_text) {
    for (const entry& e : table) {
        SCOPED_TRACE(e.id);
        PyObject* o = *e.name;
        ASSERT_NE(o, nullptr);
        ASSERT_TRUE(PyUnicode_CheckExact(o));
        EXPECT_TRUE(PyUnicode_CHECK_INTERNED(o));
        EXPECT_STREQ(PyUnicode_AsUTF8(o), e.text);
        // What the interpreter interns for the same text is this very object,
        // so a dict lookup with it is a pointer comparison.
        ref same = ref::steal(PyUnicode_InternFromString(e.text));
        EXPECT_EQ(same.get(), o);
    }
}

TEST(names, texts_are_distinct) {
    std::set<std::string> seen;
    for (const entry& e : table) EXPECT_TRUE(seen.insert(e.text).second) << e.id << " repeats \"" << e.text << '"';
}

TEST(names, init_again_changes_nothing) {
    PyObject* before = names::type;
    Py_ssize_t count = Py_REFCNT(before);
    names::init();
    EXPECT_EQ(names::type, before);
    EXPECT_EQ(Py_REFCNT(before), count);
}

} // namespace
} // namespace trestle::py
