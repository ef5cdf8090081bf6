#include "bridge/observability/log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace trestle::log {
namespace {
std::atomic<int> min_level{static_cast<int>(level::info)};
std::mutex out_mutex;
const char* const names[] = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"};
std::string error_log_path;   // set by redirect_stderr; main thread only, before threads start
std::string tag_prefix;       // "[worker 2] ", set before threads start
} // namespace

void set_level(std::string_view name) {
    level l = level::info;
    if (name == "debug") l = level::debug;
    else if (name == "warning") l = level::warning;
    else if (name == "error") l = level::error;
    else if (name == "critical") l = level::critical;
    min_level = static_cast<int>(l);
}

bool redirect_stderr(const std::string& path, std::string& why) {
    int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        why = "cannot open error log " + path + ": " + std::strerror(errno);
        return false;
    }
    std::fflush(stderr);
    int r = ::dup2(fd, STDERR_FILENO);   // fd 2 itself is inherited, as a process's stderr is
    int err = errno;
    ::close(fd);
    if (r < 0) {
        why = "cannot redirect stderr to " + path + ": " + std::strerror(err);
        return false;
    }
    error_log_path = path;
    return true;
}

bool has_error_log_file() { return !error_log_path.empty(); }

bool reopen_error_log(std::string& why) {
    if (error_log_path.empty()) return true;
    std::string path = error_log_path;
    std::lock_guard lock(out_mutex);
    return redirect_stderr(path, why);
}

void set_tag(std::string tag) { tag_prefix = tag.empty() ? "" : "[" + tag + "] "; }

bool enabled(level l) { return static_cast<int>(l) >= min_level.load(std::memory_order_relaxed); }

void write(level l, std::string_view msg) {
    if (!enabled(l)) return;
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
    std::lock_guard lock(out_mutex);
    std::fprintf(stderr, "[%s] [%s] %s%.*s\n", stamp, names[static_cast<int>(l)], tag_prefix.c_str(),
                 static_cast<int>(msg.size()), msg.data());
    std::fflush(stderr);
}

} // namespace trestle::log
