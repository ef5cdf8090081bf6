#pragma once
// Interpreter lifecycle: PyConfig set-up, virtualenv, sys.path, shutdown.
#include <string>
#include <vector>

namespace trestle::py {

struct interpreter_options {
    std::string chdir;
    std::vector<std::string> pythonpath;
    std::string venv;
    // False under --reload: a .pyc is judged fresh by its source's mtime in
    // whole seconds and its size, so an edit within the second that keeps
    // the size would be served from the stale one.
    bool write_bytecode = true;
};

// Initializes CPython on the calling thread, which then holds the GIL (a
// gil_release scope lets the other threads run).
// Prints a one-line error and exits 2 on bad options; exits 1 if CPython
// itself cannot start.
void initialize(const interpreter_options& o);
// Finalizes, on the thread that initialized, holding the GIL.
void finalize();
// Prints the current Python exception with its traceback to stderr and
// clears it, without setting sys.last_* (which would keep frames alive).
// Below --log-level error (critical) it only clears it.
void print_exception();

} // namespace trestle::py
