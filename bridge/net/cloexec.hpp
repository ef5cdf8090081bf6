#pragma once
// Every descriptor the server makes is close-on-exec, so a child that an app
// spawns (os.system, subprocess with close_fds=False) inherits none of them:
// not a listener (which would keep the port bound after the server exits),
// not a client's connection, not an upstream's, not a log file.
#include <boost/system/error_code.hpp>

#include <cerrno>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

namespace trestle::net {

// For a descriptor made by code that takes no flag (Asio's accept()). Between
// its creation and this call a concurrent fork could still inherit it.
inline void set_cloexec(int fd) {
    int flags = ::fcntl(fd, F_GETFD);
    if (flags >= 0 && !(flags & FD_CLOEXEC)) ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

// Opens an Asio socket or acceptor with SOCK_CLOEXEC from the start (Asio's
// own open() passes no such flag).
template <class Socket, class Protocol>
void open_cloexec(Socket& s, const Protocol& p, boost::system::error_code& ec) {
    int fd = ::socket(p.family(), p.type() | SOCK_CLOEXEC, p.protocol());
    if (fd < 0) {
        ec.assign(errno, boost::system::system_category());
        return;
    }
    s.assign(p, fd, ec);
    if (ec) ::close(fd);
}

} // namespace trestle::net
