#include "bridge/python/names.hpp"

namespace trestle::py::names {

void init() {
    static bool made = false;
    if (made) return;
    // Each reference is kept for the process, never released: they are
    // constants, and every request may use them up to the last one.
#define TRESTLE_PY_NAME_INTERN(id, text) \
    id = PyUnicode_InternFromString(text); \
    if (!id) Py_FatalError("trestle: cannot intern the name '" text "'");
    TRESTLE_PY_NAMES(TRESTLE_PY_NAME_INTERN)
#undef TRESTLE_PY_NAME_INTERN
    made = true;
}

} // namespace trestle::py::names
