#include "bridge/supervisor/process.hpp"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sys/wait.h>
#include <unistd.h>

namespace trestle::supervisor {

std::string describe_status(int status) {
    if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        const char* abbrev = sigabbrev_np(sig);
        std::string out = "killed by signal " + std::to_string(sig);
        if (abbrev) out += std::string(" (SIG") + abbrev + ")";
        if (WCOREDUMP(status)) out += ", core dumped";
        return out;
    }
    return "status " + std::to_string(status);
}

std::size_t resident_bytes(pid_t pid) {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/statm", static_cast<int>(pid));
    std::FILE* f = std::fopen(path, "re");
    if (!f) return 0;
    unsigned long size = 0, resident = 0;
    int n = std::fscanf(f, "%lu %lu", &size, &resident);
    std::fclose(f);
    if (n != 2) return 0;
    return static_cast<std::size_t>(resident) * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

std::string program_path(const char* argv0) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!argv0 || !*argv0) return {};
    std::string name = argv0;
    if (name.find('/') != std::string::npos) {
        fs::path p = fs::absolute(name, ec);
        return ec ? std::string{} : p.lexically_normal().string();
    }
    const char* path = std::getenv("PATH");
    std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
    std::size_t pos = 0;
    while (pos <= dirs.size()) {
        std::size_t end = dirs.find(':', pos);
        std::string dir = dirs.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
        fs::path candidate = fs::path(dir.empty() ? "." : dir) / name;
        if (::access(candidate.c_str(), X_OK) == 0) return fs::absolute(candidate, ec).lexically_normal().string();
        if (end == std::string::npos) break;
        pos = end + 1;
    }
    return {};
}

} // namespace trestle::supervisor
