#include "bridge/net/body_buffer.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace trestle::net {

// ---- body_file --------------------------------------------------------------

body_file& body_file::operator=(body_file&& o) noexcept {
    if (this != &o) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = o.fd_;
        size_ = o.size_;
        o.fd_ = -1;
        o.size_ = 0;
    }
    return *this;
}

body_file::~body_file() {
    if (fd_ >= 0) ::close(fd_);
}

bool body_file::read_at(std::uint64_t offset, char* dst, std::size_t n) const {
    while (n > 0) {
        ssize_t got = ::pread(fd_, dst, n, static_cast<off_t>(offset));
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return false;   // the file is ours alone: a short file is an error
        dst += got;
        n -= static_cast<std::size_t>(got);
        offset += static_cast<std::uint64_t>(got);
    }
    return true;
}

int open_unlinked_temp(const std::string& dir) {
#ifdef O_TMPFILE
    int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0) return fd;
    // Not every file system has O_TMPFILE (EOPNOTSUPP, EISDIR on old kernels).
    if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) return -1;
#endif
    std::string path = dir + "/trestle-body-XXXXXX";
    int fd2 = ::mkostemp(path.data(), O_CLOEXEC);
    if (fd2 < 0) return -1;
    ::unlink(path.c_str());
    return fd2;
}

// ---- body_buffer ------------------------------------------------------------

body_buffer::body_buffer(std::size_t memory_limit, std::string temp_dir, std::optional<std::uint64_t> expected)
    : memory_limit_(memory_limit), temp_dir_(std::move(temp_dir)) {
    // A known length that fits is reserved once, so the buffer never grows
    // by copies; a chunked body grows as std::string does, up to the limit.
    if (expected && *expected <= memory_limit_) memory_.reserve(static_cast<std::size_t>(*expected));
}

body_buffer::~body_buffer() {
    if (fd_ >= 0) ::close(fd_);
}

bool body_buffer::append(std::string& data) {
    if (data.empty()) return true;
    std::size_t n = data.size();
    bool ok;
    if (fd_ >= 0) ok = write_all(data);
    else if (memory_.size() + data.size() > memory_limit_) ok = spill(data);
    else {
        if (memory_.empty() && memory_.capacity() < data.size()) memory_.swap(data);
        else memory_.append(data);
        ok = true;
    }
    if (ok) size_ += n;
    data.clear();
    return ok;
}

bool body_buffer::spill(std::string_view more) {
    fd_ = open_unlinked_temp(temp_dir_);
    if (fd_ < 0) {
        error_ = "cannot create a temporary file in " + temp_dir_ + ": " + std::strerror(errno);
        return false;
    }
    if (!write_all(memory_) || !write_all(more)) return false;
    std::string().swap(memory_);   // give the memory back now, not at the end of the body
    return true;
}

bool body_buffer::write_all(std::string_view data) {
    while (!data.empty()) {
        ssize_t n = ::write(fd_, data.data(), data.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            error_ = "cannot write the request body to a temporary file in " + temp_dir_ + ": " +
                     (n < 0 ? std::strerror(errno) : "no progress");
            return false;
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

body_file body_buffer::take_file() {
    int fd = fd_;
    fd_ = -1;
    return body_file(fd, size_);
}

// ---- body_rate --------------------------------------------------------------

body_rate::body_rate(std::uint64_t bytes_per_second, std::chrono::milliseconds window)
    : need_(bytes_per_second * static_cast<std::uint64_t>(window.count()) / 1000), window_(window) {
    if (bytes_per_second > 0 && need_ == 0) need_ = 1;
}

void body_rate::start() {
    started_ = false;
    waiting_ = false;
    got_ = 0;
}

void body_rate::resume(clock::time_point now) {
    if (need_ == 0 || waiting_) return;
    waiting_ = true;
    if (!started_) {
        started_ = true;
        window_start_ = now;
        return;
    }
    window_start_ += now - paused_at_;   // time spent not waiting does not count
}

void body_rate::pause(clock::time_point now) {
    if (!waiting_) return;
    waiting_ = false;
    paused_at_ = now;
}

void body_rate::add(std::uint64_t n, clock::time_point now) {
    if (need_ == 0) return;
    got_ += n;
    if (got_ < need_) return;
    // This window is met: the next one starts now; if the server is not
    // waiting at this moment, its clock starts again at the next resume().
    got_ = 0;
    window_start_ = now;
    if (!waiting_) paused_at_ = now;
}

body_rate::clock::time_point body_rate::deadline() const {
    if (need_ == 0 || !started_ || !waiting_) return clock::time_point::max();
    return window_start_ + window_;
}

} // namespace trestle::net
