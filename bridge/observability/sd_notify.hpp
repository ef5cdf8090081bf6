#pragma once
// systemd's notify protocol (sd_notify(3)) without libsystemd: one datagram
// per message to the unix socket named by NOTIFY_SOCKET (a path, or @name in
// the abstract namespace). READY=1 once the server serves, STOPPING=1 when a
// graceful stop begins, WATCHDOG=1 every WATCHDOG_USEC/2. A future
// supervisor sends the same messages through this class, plus RELOADING=1
// around a reload and MAINPID= after a binary upgrade.
#include <atomic>
#include <chrono>
#include <string>
#include <string_view>

namespace trestle::sd {

class notifier {
public:
    notifier() = default;
    ~notifier();
    notifier(const notifier&) = delete;
    notifier& operator=(const notifier&) = delete;

    // Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID, then unsets them
    // so an app's children do not talk to systemd in the server's name. Call
    // before Python starts (its os.environ is a copy taken then).
    void from_environment();
    bool enabled() const { return fd_ >= 0; }
    // Zero unless WATCHDOG_USEC is set (and WATCHDOG_PID, if set, is this
    // process): how often to send WATCHDOG=1 (half the timeout).
    std::chrono::microseconds watchdog_interval() const { return watchdog_; }
    // Sends one message ("READY=1\nSTATUS=..."). Thread-safe and nonblocking;
    // a failure is logged once, then ignored.
    void send(std::string_view message);
    // NOTIFY_SOCKET as it was given (a binary upgrade hands it on); "" if none.
    const std::string& socket_name() const { return name_; }
    // In a forked worker: the supervisor keeps talking to systemd, not it.
    void close();

private:
    int fd_ = -1;
    std::string addr_;   // the sockaddr_un bytes
    std::string name_;
    std::chrono::microseconds watchdog_{0};
    std::atomic<bool> failed_logged_{false};
};

} // namespace trestle::sd
