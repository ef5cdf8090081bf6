#include "bridge/net/inherited_fds.hpp"

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

namespace trestle::net {

namespace {
bool parse_number(const char* text, unsigned long& out) {
    if (!text || !*text) return false;
    const char* end = text + std::strlen(text);
    auto [p, ec] = std::from_chars(text, end, out);
    return ec == std::errc{} && p == end;
}
} // namespace

void set_cloexec(int fd) {
    int flags = ::fcntl(fd, F_GETFD);
    if (flags >= 0 && !(flags & FD_CLOEXEC)) ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

std::vector<inherited_socket> take_listen_fds() {
    unsigned long pid = 0, count = 0;
    bool ours = parse_number(std::getenv("LISTEN_PID"), pid) && pid == static_cast<unsigned long>(::getpid()) &&
                parse_number(std::getenv("LISTEN_FDS"), count);
    std::string names = ours && std::getenv("LISTEN_FDNAMES") ? std::getenv("LISTEN_FDNAMES") : "";
    ::unsetenv("LISTEN_PID");
    ::unsetenv("LISTEN_FDS");
    ::unsetenv("LISTEN_FDNAMES");
    std::vector<inherited_socket> out;
    if (!ours) return out;
    for (unsigned long i = 0; i < count && i < 4096; ++i) {
        inherited_socket s{listen_fds_start + static_cast<int>(i), {}};
        // LISTEN_FDNAMES: colon-separated, one per descriptor.
        auto colon = names.find(':');
        s.name = names.substr(0, colon);
        names = colon == std::string::npos ? "" : names.substr(colon + 1);
        set_cloexec(s.fd);
        out.push_back(std::move(s));
    }
    return out;
}

std::string check_listener(int fd) {
    int type = 0, listening = 0;
    socklen_t len = sizeof type;
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0)
        return errno == EBADF ? "not an open descriptor" : errno == ENOTSOCK ? "not a socket" : std::strerror(errno);
    if (type != SOCK_STREAM) return "not a stream socket";
    len = sizeof listening;
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening)
        return "not a listening socket";
    sockaddr_storage ss{};
    len = sizeof ss;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return std::strerror(errno);
    if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6 && ss.ss_family != AF_UNIX)
        return "not a TCP or unix socket";
    return "";
}

} // namespace trestle::net
