#pragma once
// A static mount's root directory, held open from startup, and the opening
// of names beneath it. Names come from file_path (no "..", no
// empty segments); what keeps a symlink from leading out of the root is
// the kernel's resolution, not string checks.
#include <string>

namespace trestle::statics {

class root_dir {
public:
    enum class resolver {
        detect,    // openat2 if the kernel has it, else the walk below
        openat2,   // RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS
        walk,      // one component at a time with O_NOFOLLOW: no symlinks at all
    };

    // Throws std::runtime_error (one line) unless `path` is a readable
    // directory. With follow_symlinks, symlinks may lead anywhere.
    root_dir(const std::string& path, bool follow_symlinks, resolver how = resolver::detect);
    ~root_dir();
    root_dir(const root_dir&) = delete;
    root_dir& operator=(const root_dir&) = delete;

    // Opens `rel` ("" is the root itself) read-only and non-blocking (a FIFO
    // must not hang the io thread), or only as a path (O_PATH) for a cheap
    // existence check. Returns the descriptor, or -errno: ENOENT/ENOTDIR
    // for what is not there, EXDEV/ELOOP for a symlink refused, EACCES.
    int open(const std::string& rel, bool path_only = false) const;

    bool uses_openat2() const { return how_ == resolver::openat2; }
    bool follows_symlinks() const { return follow_; }

private:
    int open_walk(const std::string& rel, int flags) const;

    int fd_ = -1;
    bool follow_;
    resolver how_;
};

} // namespace trestle::statics
