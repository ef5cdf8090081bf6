#pragma once
// The access log: one line per request, in a format of access_format.hpp;
// by default the Apache/nginx "combined" format with the request duration
// in seconds appended:
//   REMOTE - - [27/Nov/2026:10:00:00 +0000] "GET /p?q HTTP/1.1" 200 13 "REFERER" "USER-AGENT" 0.000412
// Lines to a file (or to stdout when it is not a terminal) are buffered and
// written at least once per second and on shutdown; to stderr or a terminal,
// each at once. Every write(2) holds whole lines only, so the lines of
// several worker processes appending to one file (or one pipe, up to
// PIPE_BUF a write) never cut into each other.
#include "bridge/observability/access_format.hpp"

#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>

namespace trestle::net { class protocol_port; }

namespace trestle {

class access_log {
public:
    // path "-" (or /dev/stderr) means stderr, /dev/stdout stdout. `format`
    // as --access-log-format takes it. Throws std::runtime_error if the
    // file cannot be opened or the format compiled.
    explicit access_log(const std::string& path, std::string_view format = "combined");
    ~access_log();
    // `finished`: when the app completed the response (default: now).
    void record(net::protocol_port& ex, std::chrono::steady_clock::time_point started,
                std::chrono::steady_clock::time_point finished = {});
    void flush();
    // SIGUSR1 (logrotate): opens the path again and writes there from now on;
    // the lines written so far stay in the old (renamed) file. Returns false
    // with `why` if the path cannot be opened, and keeps writing to the old file.
    // A no-op for stderr.
    bool reopen(std::string& why);
    bool to_file() const { return owned_; }
    // The format shows response headers: each exchange must keep them.
    bool needs_response_head() const { return format_.needs_response_head(); }

private:
    void write_out_locked();   // writes buf_ out, whole; m_ held
    void append_locked(std::string_view line);

    access_format format_;
    std::string path_;
    int fd_ = -1;
    bool owned_ = false;
    std::size_t limit_ = 0;   // buffered bytes that trigger a write; 0: none kept
    std::string buf_;         // whole lines not yet written
    std::mutex m_;
};

} // namespace trestle
