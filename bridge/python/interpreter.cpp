#include "bridge/python/interpreter.hpp"

#include "bridge/observability/log.hpp"
#include "bridge/python/names.hpp"
#include "bridge/python/package_dir.hpp"
#include "bridge/python/ref.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <unistd.h>

namespace trestle::py {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail_usage(const std::string& msg) {
    std::fprintf(stderr, "trestle: error: %s\n", msg.c_str());
    std::exit(2);
}

void check(PyStatus status) {
    if (PyStatus_Exception(status)) {
        std::fprintf(stderr, "trestle: error: cannot start Python: %s%s%s\n",
                     status.func ? status.func : "", status.func ? ": " : "",
                     status.err_msg ? status.err_msg : "unknown error");
        std::exit(1);
    }
}

// The interpreter a virtualenv was made from: its bin/python.
std::string venv_python(const std::string& venv) {
    fs::path dir(venv);
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) fail_usage("--venv " + venv + ": not a directory");
    if (!fs::exists(dir / "pyvenv.cfg", ec)) fail_usage("--venv " + venv + ": no pyvenv.cfg (not a virtualenv)");
    for (const char* name : {"bin/python3", "bin/python"}) {
        if (fs::exists(dir / name, ec)) return (fs::absolute(dir, ec) / name).string();
    }
    fail_usage("--venv " + venv + ": no bin/python3 inside");
}

void prepend_sys_path(const std::vector<std::string>& dirs) {
    borrowed path = PySys_GetObject("path");
    if (!path || !PyList_Check(path)) return;
    for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) {
        ref item = ref::steal(PyUnicode_DecodeFSDefault(it->c_str()));
        if (item) PyList_Insert(path, 0, item.get());
    }
}

void append_sys_path(const std::string& dir) {
    borrowed path = PySys_GetObject("path");
    if (!path || !PyList_Check(path)) return;
    ref item = ref::steal(PyUnicode_DecodeFSDefault(dir.c_str()));
    if (item) PyList_Append(path, item.get());
}

} // namespace

void initialize(const interpreter_options& o) {
    if (!o.chdir.empty() && ::chdir(o.chdir.c_str()) != 0)
        fail_usage("--chdir " + o.chdir + ": " + std::strerror(errno));
    for (auto& p : o.pythonpath) {
        std::error_code ec;
        if (!fs::is_directory(p, ec)) fail_usage("--pythonpath " + p + ": not a directory");
    }

    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    config.install_signal_handlers = 0;   // the server owns SIGINT/SIGTERM
    config.parse_argv = 0;
    if (!o.write_bytecode) config.write_bytecode = 0;
    // CPython finds its standard library from the executable it believes it
    // is. Name Debian's (or the build's) interpreter explicitly so a python3
    // earlier on PATH cannot mislead it; for a virtualenv, name the venv's,
    // which makes CPython read pyvenv.cfg exactly as `venv/bin/python` would.
    std::string exe = o.venv.empty() ? std::string(TRESTLE_PYTHON_EXECUTABLE) : venv_python(o.venv);
    check(PyConfig_SetBytesString(&config, &config.program_name, exe.c_str()));
    check(PyConfig_SetBytesString(&config, &config.executable, exe.c_str()));
    char arg0[] = "trestle";
    char* argv[] = {arg0};
    check(PyConfig_SetBytesArgv(&config, 1, argv));
    PyStatus st = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    check(st);
    names::init();

    // Like gunicorn: the app's directory first, then --pythonpath entries
    // ahead of it, and Trestle's own package last.
    std::vector<std::string> front = o.pythonpath;
    std::error_code ec;
    front.push_back(fs::current_path(ec).string());
    prepend_sys_path(front);
    // Next to the binary when installed, else the source tree it was built
    // from (see package_dir.hpp).
    fs::path package = own_package_dir();
    if (package.empty())
        log::warning(std::string("Trestle's Python package is neither installed beside the binary (")
                     + TRESTLE_PYTHON_PACKAGE_REL + ") nor in " + TRESTLE_PYTHON_PACKAGE_DIR
                     + ": `import trestle` will fail");
    else
        append_sys_path(package.string());
}

void finalize() {
    if (Py_FinalizeEx() < 0) log::warning("errors while finalizing Python");
}

void print_exception() {
    // A traceback is an error-level line: --log-level critical drops it
    // with the line that introduces it. Startup failures still end in
    // die()'s one line.
    if (!log::enabled(log::level::error)) {
        PyErr_Clear();
        return;
    }
    if (PyErr_Occurred()) PyErr_PrintEx(0);
    std::fflush(stderr);
}

} // namespace trestle::py
