#include "adapters/static/root_dir.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdexcept>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace trestle::statics {

namespace {

int sys_openat2(int dirfd, const char* path, int flags, std::uint64_t resolve) {
    open_how how{};
    how.flags = static_cast<std::uint64_t>(flags);
    how.resolve = resolve;
    return static_cast<int>(::syscall(SYS_openat2, dirfd, path, &how, sizeof how));
}

int open_flags(bool path_only) {
    return path_only ? O_PATH | O_CLOEXEC : O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
}

} // namespace

root_dir::root_dir(const std::string& path, bool follow_symlinks, resolver how)
    : follow_(follow_symlinks), how_(how) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd_ < 0 || ::faccessat(fd_, ".", R_OK | X_OK, AT_EACCESS) != 0) {
        int err = errno;
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
        throw std::runtime_error("static root '" + path + "' is not a readable directory (" + std::strerror(err) + ")");
    }
    if (how_ == resolver::detect) {
        // A kernel before 5.6 (or a seccomp filter that predates openat2)
        // answers ENOSYS.
        int probe = sys_openat2(fd_, ".", O_PATH | O_CLOEXEC, RESOLVE_BENEATH);
        if (probe >= 0) ::close(probe);
        how_ = probe < 0 && (errno == ENOSYS || errno == EPERM) ? resolver::walk : resolver::openat2;
    }
}

root_dir::~root_dir() {
    if (fd_ >= 0) ::close(fd_);
}

int root_dir::open(const std::string& rel, bool path_only) const {
    const char* name = rel.empty() ? "." : rel.c_str();
    int flags = open_flags(path_only);
    if (how_ == resolver::openat2) {
        std::uint64_t resolve = RESOLVE_NO_MAGICLINKS | (follow_ ? 0 : RESOLVE_BENEATH);
        for (int attempt = 0;; ++attempt) {
            int fd = sys_openat2(fd_, name, flags, resolve);
            if (fd >= 0) return fd;
            // EAGAIN: a rename raced a ".." inside a symlink's target; the
            // kernel asks for a retry.
            if (errno != EAGAIN || attempt == 3) return -errno;
        }
    }
    if (follow_) {
        int fd = ::openat(fd_, name, flags);
        return fd >= 0 ? fd : -errno;
    }
    return open_walk(rel, flags);
}

int root_dir::open_walk(const std::string& rel, int flags) const {
    if (rel.empty()) {
        int fd = ::openat(fd_, ".", flags);
        return fd >= 0 ? fd : -errno;
    }
    int dir = fd_;
    std::size_t pos = 0;
    for (;;) {
        std::size_t slash = rel.find('/', pos);
        std::string part = rel.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos);
        bool last = slash == std::string::npos;
        int fd = ::openat(dir, part.c_str(), last ? flags | O_NOFOLLOW : O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int err = errno;
        if (dir != fd_) ::close(dir);
        if (fd < 0) return -err;
        if (last) {
            // O_PATH | O_NOFOLLOW opens a symlink itself; refuse it as the
            // other opens do.
            struct stat st{};
            if ((flags & O_PATH) && (::fstat(fd, &st) != 0 || S_ISLNK(st.st_mode))) {
                ::close(fd);
                return -ELOOP;
            }
            return fd;
        }
        dir = fd;
        pos = slash + 1;
    }
}

} // namespace trestle::statics
