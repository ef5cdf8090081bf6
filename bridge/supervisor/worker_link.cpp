#include "bridge/supervisor/worker_link.hpp"

#include <atomic>
#include <cerrno>
#include <unistd.h>

namespace trestle::supervisor {
namespace {
std::atomic<int> link_fd{-1};
std::atomic<bool> recycle_sent{false}, stuck_sent{false};
}

void set_link(int fd) { link_fd.store(fd); }
bool linked() { return link_fd.load() >= 0; }

bool tell(worker_event e) {
    int fd = link_fd.load();
    if (fd < 0) return false;
    if (e == worker_event::recycle && recycle_sent.exchange(true)) return true;
    if (e == worker_event::stuck && stuck_sent.exchange(true)) return true;
    char c = static_cast<char>(e);
    ssize_t n;
    do n = ::write(fd, &c, 1);
    while (n < 0 && errno == EINTR);
    return n == 1;
}

} // namespace trestle::supervisor
