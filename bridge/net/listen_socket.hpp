#pragma once
// Opens a listening socket for a --bind value (HOST:PORT, [V6]:PORT, :PORT or
// unix:/path), close-on-exec, without Asio: the supervisor binds before any
// worker (and any thread) exists, and the server adopts the descriptor.
#include <string>
#include <string_view>

namespace trestle::net {

struct listener {
    int fd = -1;
    std::string shown;       // "http://127.0.0.1:8000" or "unix:/run/app.sock", for the log
    std::string unix_path;   // set for a unix socket made here: unlinked when it is closed for good
};

// Throws bind_error (server.hpp): usage=true for a value that cannot be
// parsed or resolved, false for one that cannot be bound. Its message names
// `flag`, the option that gave `bind`.
listener open_listener(const std::string& bind, int backlog, std::string_view flag = "--bind");

// "http://HOST:PORT" or "unix:PATH" for a listening descriptor.
std::string describe_listener(int fd);

} // namespace trestle::net
