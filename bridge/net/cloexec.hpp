#pragma once
// Every descriptor the server makes is close-on-exec, so a child that an app
// spawns (os.system, subprocess with close_fds=False) inherits none of them:
// not a listener (which would keep the port bound after the server exits),
// not a client's connection, not an upstream's, not a log file. Each is
// created with the flag (SOCK_CLOEXEC, accept4, O_CLOEXEC, fopen "e"), never
// set afterwards, which would leave a window for a fork in another thread.
#include <boost/system/error_code.hpp>

#include <cerrno>
#include <sys/socket.h>
#include <unistd.h>

namespace trestle::net {

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
