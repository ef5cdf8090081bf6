#pragma once
// Listening sockets a process is handed instead of binding its own: by
// systemd's socket activation (sd_listen_fds(3): LISTEN_FDS, LISTEN_PID,
// LISTEN_FDNAMES), or named with --bind fd://N. A future supervisor passes
// its listeners to the workers the same way.
#include <string>
#include <vector>

namespace trestle::net {

constexpr int listen_fds_start = 3;   // SD_LISTEN_FDS_START

struct inherited_socket {
    int fd;
    std::string name;   // from LISTEN_FDNAMES, "" when not given
};

// The sockets systemd passed to this process (none if LISTEN_PID is another
// process's), made close-on-exec. The variables are unset either way, so an
// app's children do not take the sockets for theirs. Call while the process
// has one thread: the flag is set after the fact (the descriptors were
// inherited without it).
std::vector<inherited_socket> take_listen_fds();

// "" if `fd` is an open listening stream socket, else why it is not.
std::string check_listener(int fd);

// Sets FD_CLOEXEC on an inherited descriptor (one thread only, see above).
void set_cloexec(int fd);

} // namespace trestle::net
