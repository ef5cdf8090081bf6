// Units that touch Python share one interpreter, started here.
#include "bridge/python/names.hpp"

#include <gtest/gtest.h>

int main(int argc, char** argv) {
    testing::InitGoogleTest(&argc, argv);
    PyConfig config;
    PyConfig_InitIsolatedConfig(&config);
    PyConfig_SetBytesString(&config, &config.program_name, TRESTLE_PYTHON_EXECUTABLE);
    PyStatus st = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(st)) return 1;
    trestle::py::names::init();
    int rc = RUN_ALL_TESTS();
    Py_FinalizeEx();
    return rc;
}
