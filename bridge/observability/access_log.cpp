#include "bridge/observability/access_log.hpp"

#include "bridge/net/exchange.hpp"
#include "bridge/net/http_date.hpp"

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <stdexcept>

namespace trestle {

access_log::access_log(const std::string& path) : path_(path) {
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

namespace {
// Quotes a header value for the log: '"' and control bytes are escaped so a
// client cannot forge log lines.
void append_quoted(std::string& line, const std::string* v) {
    line += '"';
    if (!v) {
        line += '-';
    } else {
        for (unsigned char c : *v) {
            if (c == '"' || c == '\\' || c < 0x20 || c >= 0x7f) {
                char esc[8];
                std::snprintf(esc, sizeof esc, "\\x%02x", c);
                line += esc;
            } else {
                line += static_cast<char>(c);
            }
        }
    }
    line += '"';
}
} // namespace

void access_log::record(net::exchange& ex, std::chrono::steady_clock::time_point started,
                        std::chrono::steady_clock::time_point finished) {
    if (finished < started) finished = std::chrono::steady_clock::now();
    auto elapsed = std::chrono::duration<double>(finished - started).count();
    const auto& h = ex.head();
    // Not strftime: its month names follow the locale an app may set.
    std::string stamp = net::format_log_date(std::time(nullptr));

    std::string line;
    line.reserve(256);
    line += ex.endpoint().remote_addr.empty() ? "-" : ex.endpoint().remote_addr;
    line += " - - ";
    line += stamp;
    line += ' ';
    std::string request = h.method + " " + h.target + (h.version == 10 ? " HTTP/1.0" : " HTTP/1.1");
    append_quoted(line, &request);
    line += ' ';
    // Each read once: an aborted exchange's app may still be changing them.
    unsigned status = ex.status();
    std::uint64_t bytes = ex.body_bytes();
    line += status ? std::to_string(status) : "-";
    line += ' ';
    line += bytes ? std::to_string(bytes) : "-";
    line += ' ';
    append_quoted(line, h.find("referer"));
    line += ' ';
    append_quoted(line, h.find("user-agent"));
    char dur[32];
    std::snprintf(dur, sizeof dur, " %.6f\n", elapsed);
    line += dur;
    std::lock_guard lock(m_);
    std::fwrite(line.data(), 1, line.size(), out_);
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
