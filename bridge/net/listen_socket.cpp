#include "bridge/net/listen_socket.hpp"
#include "bridge/net/server.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace trestle::net {
namespace {

std::string errno_text(int err) { return std::strerror(err); }

listener open_unix(const std::string& path, int backlog) {
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (path.size() >= sizeof sa.sun_path) throw bind_error("cannot listen on unix:" + path + ": path too long", true);
    std::memcpy(sa.sun_path, path.data(), path.size());
    // A stale socket file from a process that did not clean up; anything
    // else at that path is left alone (bind then fails).
    struct stat st{};
    if (::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(path.c_str());
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(fd, backlog) != 0) {
        int err = errno;
        if (fd >= 0) ::close(fd);
        throw bind_error("cannot listen on unix:" + path + ": " + errno_text(err), false);
    }
    return {fd, "unix:" + path, path};
}

} // namespace

std::string describe_listener(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "fd " + std::to_string(fd);
    char host[INET6_ADDRSTRLEN] = "";
    if (ss.ss_family == AF_INET) {
        auto* a = reinterpret_cast<sockaddr_in*>(&ss);
        ::inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        return std::string("http://") + host + ":" + std::to_string(ntohs(a->sin_port));
    }
    if (ss.ss_family == AF_INET6) {
        auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
        ::inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        return std::string("http://[") + host + "]:" + std::to_string(ntohs(a->sin6_port));
    }
    if (ss.ss_family == AF_UNIX) {
        auto* a = reinterpret_cast<sockaddr_un*>(&ss);
        std::size_t n = len > offsetof(sockaddr_un, sun_path) ? len - offsetof(sockaddr_un, sun_path) : 0;
        std::string path(a->sun_path, strnlen(a->sun_path, n));
        if (n > 0 && a->sun_path[0] == '\0') path = "@" + std::string(a->sun_path + 1, n - 1);
        return "unix:" + path;
    }
    return "fd " + std::to_string(fd);
}

listener open_listener(const std::string& text, int backlog, std::string_view flag) {
    bind_spec b = parse_bind(text, flag);
    if (b.fd >= 0)
        throw bind_error(std::string(flag) + " " + text + ": an inherited descriptor is not opened here", true);
    if (b.is_unix) return open_unix(b.host, backlog);
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* res = nullptr;
    std::string port = std::to_string(b.port);
    int rc = ::getaddrinfo(b.host.empty() ? nullptr : b.host.c_str(), port.c_str(), &hints, &res);
    if (rc != 0 || !res)
        throw bind_error("cannot resolve " + std::string(flag) + " host '" + b.host + "': " + ::gai_strerror(rc), true);
    // The first address, as the resolver orders them (one socket per --bind).
    addrinfo* ai = res;
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    int one = 1;
    bool ok = fd >= 0 && ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
              (ai->ai_family != AF_INET6 || ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) == 0) &&
              ::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, backlog) == 0;
    int err = errno;
    ::freeaddrinfo(res);
    if (!ok) {
        if (fd >= 0) ::close(fd);
        throw bind_error("cannot listen on " + text + ": " + errno_text(err), false);
    }
    return {fd, describe_listener(fd), {}};
}

} // namespace trestle::net
