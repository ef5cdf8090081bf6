#pragma once
// Where the binary finds its own `trestle` Python package.
#include <filesystem>
#include <string>

namespace trestle::py {

// The directory to put on sys.path so `import trestle` finds Trestle's
// package. An installed tree is looked for first, relative to the binary
// (`exe`'s directory joined with `installed_rel`, e.g. ../share/trestle/python),
// so an install works from any working directory and after being moved; the
// build tree's `fallback` (the source checkout's adapters/python) is used
// only when no installed package sits next to the binary. Returns an empty
// path when neither holds trestle/__init__.py.
std::filesystem::path find_package_dir(const std::filesystem::path& exe,
                                       const std::filesystem::path& installed_rel,
                                       const std::filesystem::path& fallback);

// find_package_dir for this process: /proc/self/exe, resolved, and the
// locations the build configured.
std::filesystem::path own_package_dir();

} // namespace trestle::py
