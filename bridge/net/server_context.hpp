#pragma once
#include "bridge/config/options.hpp"
#include "bridge/core/admission.hpp"
#include "bridge/net/forwarded.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace trestle { class access_log; }
namespace trestle::router { class mount_table; }
namespace trestle::runtime { class request_watchdog; }

namespace trestle::net {

// What every connection of a server reads; fixed once serving starts, except
// `unready` and `draining`, which flip once on graceful shutdown.
struct server_context {
    http_limits limits;
    std::size_t output_hwm = 256 * 1024;
    std::size_t preread_bytes = 64 * 1024;
    std::size_t body_buffer_bytes = 1 << 20;   // see options::body_buffer_bytes
    std::string body_temp_dir = "/tmp";
    std::string server_header = "trestle";
    std::string retry_after = "1";
    // --limit-concurrency. Mutable: the one part of a fixed context that the
    // handlers, which see it const, change (thread-safe, like a mutex).
    mutable admission apps_in_flight;
    // --worker-connections: connections open at once (0: no cap). At the cap
    // the accept loop stops taking new ones until one closes; they wait in
    // the listen backlog, where another worker process may take them.
    std::size_t max_connections = 0;
    // HTTP/2: on (ALPN "h2" over TLS, prior knowledge on plain binds), and
    // the streams a connection may have open at once.
    bool http2 = true;
    std::size_t h2_max_streams = 100;
    // WebSockets over HTTP/2 (RFC 8441: SETTINGS_ENABLE_CONNECT_PROTOCOL).
    // Off when a mount relays WebSocket upgrades to an upstream, which is
    // done over HTTP/1.1 only: clients then open their WebSockets on
    // HTTP/1.1 connections.
    bool h2_websockets = false;
    std::size_t ws_max_size = 16 * 1024 * 1024;
    std::chrono::milliseconds ws_idle_timeout{60'000};
    trusted_proxies trusted;   // --forwarded-allow-ips
    // --timeout (0: off). Apps that run a request in Python arm it on the
    // request's exchange; the connections' watchdog scan enforces it.
    std::chrono::milliseconds request_timeout{0};
    // Raises into WSGI threads whose request timed out and notices the ones
    // that never come back; null when --timeout is 0.
    runtime::request_watchdog* watchdog = nullptr;
    // Resolves each request to its handler (once per request).
    const router::mount_table* router = nullptr;
    access_log* access = nullptr;
    bool log_response_head = false;   // the access log's format shows response headers
    // Readiness fails (--health-path): set when a graceful stop begins,
    // --drain-delay before `draining`.
    std::atomic<bool> unready{false};
    std::atomic<bool> draining{false};
    // --max-requests: after this many requests on_request_limit runs once,
    // on an io thread (0: no limit, nothing counted).
    std::uint64_t request_limit = 0;
    std::function<void()> on_request_limit;
    std::atomic<std::uint64_t> requests_seen{0};
    // A worker under a supervisor: its connection count in memory shared
    // with the other workers, and the least count among them (-1: none).
    // The accept loop leaves a new connection a moment to a worker that
    // holds clearly fewer (supervisor/load_table.hpp).
    std::atomic<std::int32_t>* shared_load = nullptr;
    std::function<std::int32_t()> least_other_load;
};

} // namespace trestle::net
