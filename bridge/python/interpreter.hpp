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

// Initializes CPython on the calling thread, which then holds the GIL.
// Prints a one-line error and exits 2 on bad options; exits 1 if CPython
// itself cannot start.
void initialize(const interpreter_options& o);
// Releases the GIL from the main thread so pool threads can run.
void release_main_thread();
// Takes the GIL back on the main thread (after release_main_thread).
void acquire_main_thread();
// Re-acquires it on the main thread and finalizes.
void finalize();
// Prints the current Python exception with its traceback to stderr and
// clears it, without setting sys.last_* (which would keep frames alive).
// Below --log-level error (critical) it only clears it.
void print_exception();

} // namespace trestle::py
