#include "bridge/observability/access_log.hpp"

#include "bridge/net/exchange.hpp"

#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
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
        out_ = path == "/dev/stdout" ? stdout : stderr;
        owned_ = false;
        return;
    }
    out_ = std::fopen(path.c_str(), "ae");   // e: O_CLOEXEC, not inherited by an app's child
    if (!out_) throw std::runtime_error("cannot open access log " + path + ": " + std::strerror(errno));
    owned_ = true;
}

access_log::~access_log() {
    flush();
    if (owned_) std::fclose(out_);
}


void access_log::record(net::exchange& ex, std::chrono::steady_clock::time_point started,
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
        std::fwrite(line.data(), 1, line.size(), out_);
    }
    // A request with huge headers must not pin that much memory for good.
    if (line.capacity() > 64 * 1024) std::string().swap(line);
}

bool access_log::reopen(std::string& why) {
    if (!owned_) return true;
    std::FILE* f = std::fopen(path_.c_str(), "ae");
    if (!f) {
        why = "cannot reopen access log " + path_ + ": " + std::strerror(errno);
        return false;
    }
    std::lock_guard lock(m_);
    std::fflush(out_);
    std::fclose(out_);
    out_ = f;
    return true;
}

void access_log::flush() {
    std::lock_guard lock(m_);
    std::fflush(out_);
}

} // namespace trestle
