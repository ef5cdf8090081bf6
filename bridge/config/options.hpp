#pragma once
#include <chrono>
#include <cstddef>
#include <optional>
#include <utility>
#include <string>
#include <vector>

namespace trestle {

// Limits enforced while reading a request. Defaults are documented in
// docs/configuration.md and in `trestle --help`.
struct http_limits {
    std::size_t max_header_bytes = 8192;      // request line + all header lines
    std::size_t max_header_count = 100;
    std::uint64_t max_body_bytes = 1ull << 30; // 1 GiB
    std::chrono::milliseconds header_timeout{10'000};
    std::chrono::milliseconds keepalive_timeout{5'000};
    std::chrono::milliseconds io_timeout{60'000}; // body read / response write stall
};

struct options {
    std::string app;                           // module:attr or module:factory()
    std::vector<std::pair<std::string, std::string>> mounts;   // PREFIX=SPEC, prefix normalized
    std::vector<std::string> binds;            // HOST:PORT or unix:/path
    std::size_t threads = 8;
    std::size_t io_threads = 1;
    std::size_t max_queue = 1024;
    unsigned retry_after = 1;
    std::size_t output_hwm = 256 * 1024;
    std::size_t preread_bytes = 64 * 1024;
    int backlog = 1024;
    http_limits limits;
    std::chrono::milliseconds graceful_timeout{30'000};
    std::string chdir;
    std::vector<std::string> pythonpath;
    std::string venv;
    std::optional<std::string> access_log;     // "-" means stderr
    std::string server_header = "trestle";
    std::string log_level = "info";
    std::string interface = "auto";            // auto, wsgi, asgi
    std::string loop = "auto";                 // auto, asyncio, uvloop
    std::string lifespan = "auto";             // auto, on, off
    bool flask_async = true;                   // run Flask async views on the shared loop
    std::size_t ws_max_size = 16 * 1024 * 1024;
    std::chrono::milliseconds ws_idle_timeout{60'000};
};

// Parses argv. On --help/--version prints and exits 0; on a bad flag prints a
// one-line error and exits 2. Never returns with an invalid result.
options parse_options(int argc, char** argv);

} // namespace trestle
