#pragma once
// A request body gathered on the io thread before a WSGI app runs, so that a
// slow upload holds a connection and some memory, never a pool thread (what
// nginx's request buffering did in front of gunicorn). The first bytes stay
// in memory; past a bound the body goes to an unlinked temporary file, which
// disappears with its descriptor whatever happens to the process.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace trestle::net {

// A body spilled to disk: an unlinked file that only this object names.
class body_file {
public:
    body_file() = default;
    body_file(int fd, std::uint64_t size) : fd_(fd), size_(size) {}
    body_file(body_file&& o) noexcept : fd_(o.fd_), size_(o.size_) { o.fd_ = -1; o.size_ = 0; }
    body_file& operator=(body_file&& o) noexcept;
    body_file(const body_file&) = delete;
    body_file& operator=(const body_file&) = delete;
    ~body_file();

    bool valid() const { return fd_ >= 0; }
    std::uint64_t size() const { return size_; }
    // Reads exactly n bytes at `offset` (pread: no shared file position, so
    // readers on several threads need no lock). False on an I/O error.
    bool read_at(std::uint64_t offset, char* dst, std::size_t n) const;

private:
    int fd_ = -1;
    std::uint64_t size_ = 0;
};

// Opens an unlinked, close-on-exec temporary file in `dir` (O_TMPFILE, or
// mkostemp and unlink where the file system lacks it). -1 with errno set.
int open_unlinked_temp(const std::string& dir);

class body_buffer {
public:
    // `memory_limit`: bytes kept in memory before the body spills to a file
    // in `temp_dir`. `expected`: the Content-Length, when there is one.
    body_buffer(std::size_t memory_limit, std::string temp_dir, std::optional<std::uint64_t> expected);
    body_buffer(const body_buffer&) = delete;
    body_buffer& operator=(const body_buffer&) = delete;
    ~body_buffer();

    // Takes the bytes of `data` (leaving it empty). False when the temporary
    // file cannot be made or written; error() then says why.
    bool append(std::string& data);
    std::uint64_t size() const { return size_; }
    bool spilled() const { return fd_ >= 0; }
    const std::string& error() const { return error_; }

    // The body, once complete: in memory (when not spilled) or in the file.
    std::string take_memory() { return std::move(memory_); }
    body_file take_file();

private:
    bool spill(std::string_view more);
    bool write_all(std::string_view data);

    std::size_t memory_limit_;
    std::string temp_dir_;
    std::string memory_;
    int fd_ = -1;   // owned; the spilled body
    std::uint64_t size_ = 0;
    std::string error_;
};

// --min-body-rate: while the server waits for body bytes, each successive
// `rate × window` bytes must arrive within `window` of waiting. The clock
// runs only while the server waits for the client (resume..pause), so an app
// that reads slowly is not taken for a slow client. A client that trickles a
// byte now and then, which --io-timeout alone never cuts, misses the deadline.
class body_rate {
public:
    using clock = std::chrono::steady_clock;
    body_rate(std::uint64_t bytes_per_second, std::chrono::milliseconds window);

    void start();                          // a new request body
    void resume(clock::time_point now);    // the server starts waiting for bytes
    void pause(clock::time_point now);     // it stopped waiting
    void add(std::uint64_t n, clock::time_point now);
    // When the current window ends unfinished; max() when the rate is off.
    clock::time_point deadline() const;

private:
    std::uint64_t need_;                   // bytes per window; 0: off
    std::chrono::milliseconds window_;
    bool started_ = false;
    bool waiting_ = false;
    clock::time_point window_start_{};
    clock::time_point paused_at_{};
    std::uint64_t got_ = 0;
};

} // namespace trestle::net
