#pragma once
// Shared by the fuzz targets: one embedded interpreter for the process,
// started once (libFuzzer calls LLVMFuzzerInitialize before any input).
#include "bridge/python/names.hpp"
#include "bridge/python/ref.hpp"

#include <cstdio>
#include <cstdlib>

namespace trestle::fuzz {

inline void start_python() {
    PyConfig config;
    PyConfig_InitIsolatedConfig(&config);
    PyConfig_SetBytesString(&config, &config.program_name, TRESTLE_PYTHON_EXECUTABLE);
    PyStatus st = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(st)) {
        std::fprintf(stderr, "fuzz: Python did not start\n");
        std::abort();
    }
    py::names::init();
}

// A Python exception where none may be: print it and crash, so libFuzzer
// keeps the input.
inline void no_python_error(const char* where) {
    if (!PyErr_Occurred()) return;
    std::fprintf(stderr, "fuzz: unexpected Python exception in %s\n", where);
    PyErr_Print();
    std::abort();
}

#define FUZZ_CHECK(cond)                                                              \
    do {                                                                              \
        if (!(cond)) {                                                                \
            std::fprintf(stderr, "fuzz: check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
            std::abort();                                                             \
        }                                                                             \
    } while (0)

} // namespace trestle::fuzz
