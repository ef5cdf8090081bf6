#include "bridge/observability/sd_notify.hpp"

#include "bridge/observability/log.hpp"

#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace trestle::sd {

namespace {
bool parse_number(const char* text, unsigned long long& out) {
    if (!text || !*text) return false;
    const char* end = text + std::strlen(text);
    auto [p, ec] = std::from_chars(text, end, out);
    return ec == std::errc{} && p == end;
}
} // namespace

notifier::~notifier() { close(); }

void notifier::close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

void notifier::from_environment() {
    const char* sock = std::getenv("NOTIFY_SOCKET");
    const char* usec = std::getenv("WATCHDOG_USEC");
    const char* wpid = std::getenv("WATCHDOG_PID");
    std::string path = sock ? sock : "";
    unsigned long long interval = 0, pid = 0;
    bool watchdog = parse_number(usec, interval) && interval > 0 &&
                    (!wpid || (parse_number(wpid, pid) && pid == static_cast<unsigned long long>(::getpid())));
    ::unsetenv("NOTIFY_SOCKET");
    ::unsetenv("WATCHDOG_USEC");
    ::unsetenv("WATCHDOG_PID");
    if (path.empty()) return;
    name_ = path;

    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if ((path[0] != '/' && path[0] != '@') || path.size() >= sizeof sa.sun_path) {
        log::warning("NOTIFY_SOCKET '" + path + "' is not a socket path or @name; not notifying systemd");
        return;
    }
    std::memcpy(sa.sun_path, path.data(), path.size());
    if (path[0] == '@') sa.sun_path[0] = '\0';   // the abstract namespace
    // A path's length includes its terminating NUL; an abstract name's does not.
    std::size_t len = offsetof(sockaddr_un, sun_path) + path.size() + (path[0] == '/' ? 1 : 0);
    addr_.assign(reinterpret_cast<const char*>(&sa), len);

    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd_ < 0) {
        log::warning(std::string("cannot create the sd_notify socket: ") + std::strerror(errno));
        return;
    }
    if (watchdog) watchdog_ = std::chrono::microseconds(interval / 2);
}

void notifier::send(std::string_view message) {
    if (fd_ < 0) return;
    auto n = ::sendto(fd_, message.data(), message.size(), MSG_NOSIGNAL,
                      reinterpret_cast<const sockaddr*>(addr_.data()), static_cast<socklen_t>(addr_.size()));
    if (n < 0 && !failed_logged_.exchange(true))
        log::warning(std::string("sd_notify failed (further failures not logged): ") + std::strerror(errno));
}

} // namespace trestle::sd
