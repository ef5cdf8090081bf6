#include "bridge/observability/access_log.hpp"

#include "bridge/net/protocol_port.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace trestle {

namespace {

std::atomic<long> pid_now{0};

void note_pid() { pid_now.store(static_cast<long>(::getpid()), std::memory_order_relaxed); }

// The pid for %(p)s and json, without a getpid(2) per line: kept current
// across a fork, since workers may be forked after the log is opened.
void track_pid() {
    static std::once_flag once;
    std::call_once(once, [] {
        note_pid();
        ::pthread_atfork(nullptr, nullptr, note_pid);
    });
}

// The compiled format, or the error as the exception the constructor throws.
access_format compile_or_throw(std::string_view format) {
    std::string why;
    auto f = access_format::compile(format, why);
    if (!f) throw std::runtime_error("--access-log-format: " + why);
    return std::move(*f);
}

// How much to keep before a write(2): a regular file takes any size whole
// (O_APPEND); a pipe or socket only up to PIPE_BUF; a terminal, or stderr
// (which was never buffered), gets each line at once.
std::size_t buffer_limit(int fd, bool is_stderr) {
    struct stat st {};
    if (is_stderr || ::isatty(fd) || ::fstat(fd, &st) != 0) return 0;
    return S_ISREG(st.st_mode) ? 64 * 1024 : PIPE_BUF;
}

int open_append(const std::string& path) {
    // O_CLOEXEC: not inherited by an app's child.
    return ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
}

} // namespace

access_log::access_log(const std::string& path, std::string_view format)
    : format_(compile_or_throw(format)), path_(path) {
    track_pid();
    // Absolute now: --chdir moves the working directory after the file is
    // opened, and SIGUSR1 must reopen the same path.
    if (std::error_code ec; path != "-" && !path.empty() && path.front() != '/') {
        auto abs = std::filesystem::absolute(path, ec);
        if (!ec) path_ = abs.lexically_normal().string();
    }
    // The standard streams are used as they are, not reopened: /dev/stdout
    // cannot be opened when it is a socket (systemd's journal).
    if (path == "-" || path == "/dev/stderr" || path == "/dev/stdout") {
        fd_ = path == "/dev/stdout" ? STDOUT_FILENO : STDERR_FILENO;
    } else {
        fd_ = open_append(path);
        if (fd_ < 0) throw std::runtime_error("cannot open access log " + path + ": " + std::strerror(errno));
        owned_ = true;
    }
    limit_ = buffer_limit(fd_, fd_ == STDERR_FILENO);
    buf_.reserve(limit_);
}

access_log::~access_log() {
    flush();
    if (owned_) ::close(fd_);
}

void access_log::write_out_locked() {
    std::size_t done = 0;
    while (done < buf_.size()) {
        ssize_t n = ::write(fd_, buf_.data() + done, buf_.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;   // a full disk or a closed pipe: these lines are lost, later ones may not be
        done += static_cast<std::size_t>(n);
    }
    buf_.clear();
}

void access_log::append_locked(std::string_view line) {
    if (buf_.size() + line.size() > limit_ && !buf_.empty()) write_out_locked();
    buf_ += line;
    if (buf_.size() >= limit_) write_out_locked();
    // A line longer than the buffer must not keep its size for good.
    if (buf_.capacity() > limit_ + 64 * 1024) {
        std::string().swap(buf_);
        buf_.reserve(limit_);
    }
}

void access_log::record(net::protocol_port& ex, std::chrono::steady_clock::time_point started,
                        std::chrono::steady_clock::time_point finished) {
    if (finished < started) finished = std::chrono::steady_clock::now();
    access_record r;
    r.head = &ex.head();
    r.endpoint = &ex.endpoint();
    // Each read once: an aborted exchange's app may still be changing them.
    r.status = ex.status();
    r.bytes = ex.body_bytes();
    r.duration = finished - started;
    r.now = std::chrono::system_clock::now();
    r.response_head = ex.response_head();
    r.pid = pid_now.load(std::memory_order_relaxed);

    // One buffer per io thread, reused: a line costs no allocation once the
    // buffer has grown to the longest line so far.
    thread_local std::string line;
    line.clear();
    format_.render(r, line);
    {
        std::lock_guard lock(m_);
        append_locked(line);
    }
    // A request with huge headers must not pin that much memory for good.
    if (line.capacity() > 64 * 1024) std::string().swap(line);
}

bool access_log::reopen(std::string& why) {
    if (!owned_) return true;
    int fd = open_append(path_);
    if (fd < 0) {
        why = "cannot reopen access log " + path_ + ": " + std::strerror(errno);
        return false;
    }
    std::lock_guard lock(m_);
    write_out_locked();
    ::close(fd_);
    fd_ = fd;
    return true;
}

void access_log::flush() {
    std::lock_guard lock(m_);
    write_out_locked();
}

} // namespace trestle
