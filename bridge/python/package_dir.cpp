#include "bridge/python/package_dir.hpp"

#include <system_error>

namespace trestle::py {

namespace fs = std::filesystem;

namespace {

bool holds_package(const fs::path& dir) {
    std::error_code ec;
    return !dir.empty() && fs::is_regular_file(dir / "trestle" / "__init__.py", ec);
}

} // namespace

fs::path find_package_dir(const fs::path& exe, const fs::path& installed_rel, const fs::path& fallback) {
    if (!exe.empty() && !installed_rel.empty()) {
        fs::path installed = (exe.parent_path() / installed_rel).lexically_normal();
        if (holds_package(installed)) return installed;
    }
    if (holds_package(fallback)) return fallback;
    return {};
}

fs::path own_package_dir() {
    // The kernel's link names the binary itself, with every symlink on the
    // way resolved, whatever argv[0] or the working directory are; canonical()
    // also resolves a link named /usr/bin/trestle into an /opt tree.
    std::error_code ec;
    fs::path exe = fs::canonical("/proc/self/exe", ec);
    if (ec) exe.clear();
    return find_package_dir(exe, TRESTLE_PYTHON_PACKAGE_REL, TRESTLE_PYTHON_PACKAGE_DIR);
}

} // namespace trestle::py
