#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
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
    // A request body must keep arriving at this rate, in bytes a second,
    // judged over each window of waiting; below it 408 (0: no minimum).
    std::uint64_t min_body_rate = 1024;
    std::chrono::milliseconds body_rate_window{10'000};
    // A TLS handshake must be done in this long (a slow handshake is a
    // slowloris too).
    std::chrono::milliseconds handshake_timeout{10'000};
};

// TLS on the --bind listeners (bridge/net/tls_context.hpp). Names as in
// gunicorn where it has them.
struct tls_options {
    std::string certfile;      // PEM: the certificate, then its chain
    std::string keyfile;       // PEM; "" when the key is in certfile
    std::string ca_certs;      // PEM: the CAs client certificates must chain to
    int cert_reqs = 0;         // client certificates: 0 none, 1 optional, 2 required (Python's ssl.CERT_*)
    std::string ciphers;       // TLS 1.2 suites, OpenSSL's syntax; "": Mozilla's intermediate list
    std::string min_version = "1.2";   // or "1.3"
    bool h2 = false;           // offer HTTP/2 in ALPN
    bool enabled() const { return !certfile.empty(); }
};

// A directory served by the io threads (adapters/static).
struct static_mount_options {
    std::string root;                    // the directory, as given
    std::string index = "index.html";    // served for a directory; empty: none
    std::string cache_control;           // Cache-Control value; empty: none sent
    bool follow_symlinks = false;        // allow symlinks that lead outside root
    bool precompressed = true;           // serve NAME.br / NAME.gz when accepted
};

// Upstream HTTP/1.1 servers a prefix is forwarded to (adapters/proxy).
struct proxy_mount_options {
    std::vector<std::string> upstreams;  // http://host:port[/path], round-robin
    std::chrono::milliseconds connect_timeout{5'000};   // then 502
    std::chrono::milliseconds read_timeout{60'000};     // upstream silent: 504
    std::size_t max_idle = 32;           // idle keep-alive connections kept per upstream
    unsigned max_fails = 1;              // failures that eject an upstream...
    std::chrono::milliseconds fail_timeout{10'000};     // ...for this long
    bool preserve_host = false;          // send the client's Host, not the upstream's
    // Upgrade protocols relayed as a tunnel (lower-case names). Any other
    // Upgrade goes upstream as a plain request, without it, as nginx does.
    std::vector<std::string> upgrades{"websocket"};
};

struct mount_spec;

// A shadow for a mount (adapters/shadow): the requests it takes are replayed
// to a second handler after the primary has answered, and the two answers
// compared. docs/configuration.md, "Shadow mode".
struct shadow_options {
    std::shared_ptr<mount_spec> target;   // an app or proxy mount at the primary's prefix
    std::vector<std::string> methods{"GET", "HEAD", "OPTIONS"};   // upper-case
    std::vector<std::string> routes;      // glob patterns on the path under the mount; empty: all
    double sample = 1.0;                  // the share of matching requests replayed
    std::size_t queue = 64;               // replays queued or running at once; more are dropped
    std::size_t concurrency = 1;          // replays running at once; the others wait their turn
    std::vector<std::string> headers{"content-type"};   // compared header fields, lower-case
    std::vector<std::string> ignore;      // JSON paths left out of the body comparison
    std::string normalizer;               // module:function applied to both bodies
    std::size_t keep = 10;                // mismatches kept per route
    std::string log;                      // JSONL file every kept mismatch is appended to
    std::chrono::milliseconds timeout{30'000};   // a replay still running then is cut
    std::size_t max_body = 1 << 20;       // bigger request bodies are not replayed; bigger
                                          // responses are compared by size and digest
    // A module:app shadow runs in a child process at idle priority
    // (adapters/shadow/shadow_process.hpp) unless shadow_process = false.
    // Resolved when the options are parsed: false for a proxy shadow.
    bool process = true;
};

// One entry of the mount table; the root has the prefix "".
struct mount_spec {
    enum class kind { app, static_files, proxy };
    std::string prefix;                  // normalized: "/v2", never a trailing '/'
    kind type = kind::app;
    std::string app;                     // module:attr (kind::app)
    std::string interface;               // auto, wsgi, asgi; empty: --interface
    std::optional<bool> flask_async;     // unset: the server-wide setting
    std::optional<std::string> flask_loop;   // "shared" or "own"; unset: the server-wide setting
    std::optional<bool> buffer_body;     // unset: the server-wide setting (WSGI apps)
    std::optional<shadow_options> shadow;
    bool shadow_target = false;          // this spec is another mount's shadow
    static_mount_options files;
    proxy_mount_options proxy;
    std::string origin;                  // "command line" or "FILE:LINE", for messages
    std::string describe() const;        // "legacy:app", "static ./public", ...
};

struct options {
    // Every mount, the root (prefix "") included when one is given. Without
    // a root, paths no mount claims get 404.
    std::vector<mount_spec> mounts;
    std::string config_file;                   // --config, "" when none
    std::vector<std::string> binds;            // HOST:PORT, unix:/path or fd://N; TLS with --certfile
    std::vector<std::string> insecure_binds;   // plain HTTP beside TLS binds (hypercorn's --insecure-bind)
    tls_options tls;
    std::string http = "auto";                 // auto: HTTP/1.1 and HTTP/2; 1: HTTP/1.1 only
    std::size_t h2_max_streams = 100;          // SETTINGS_MAX_CONCURRENT_STREAMS
    bool binds_defaulted = false;              // no --bind given: systemd's sockets may stand in
    std::size_t threads = 8;
    std::size_t blocking_threads = 32;         // the loop's executor, grown on demand up to this
    std::size_t io_threads = 1;
    std::size_t max_queue = 1024;
    std::size_t limit_concurrency = 0;         // 0: no limit (see core/admission.hpp)
    std::size_t worker_connections = 0;        // 0: no limit
    unsigned retry_after = 1;
    std::size_t output_hwm = 256 * 1024;
    std::size_t preread_bytes = 64 * 1024;
    int backlog = 1024;
    http_limits limits;
    std::chrono::milliseconds graceful_timeout{30'000};
    std::chrono::milliseconds drain_delay{0};   // serve with readiness failing before the drain
    std::chrono::milliseconds startup_timeout{60'000};   // ASGI lifespan startup, trestle.flask startup hooks
    std::string chdir;
    std::vector<std::string> pythonpath;
    std::string venv;
    std::optional<std::string> access_log;     // "-" means stderr
    std::string access_log_format = "combined";   // a name or a gunicorn format string (access_format.hpp)
    std::string error_log;                     // "" or "-": stderr; else fd 2 goes to this file
    std::string server_header = "trestle";
    std::string log_level = "info";
    std::string interface = "auto";            // auto, wsgi, asgi
    std::string loop = "auto";                 // auto, asyncio, uvloop
    std::string lifespan = "auto";             // auto, on, off
    bool flask_async = true;                   // run Flask async views on the shared loop
    std::string flask_loop = "shared";         // or "own": each Flask app's async views get a loop of their own
    std::chrono::milliseconds loop_block_warn{500};   // the loop watchdog's threshold; 0: off
    // WSGI request bodies are gathered before the app runs: this much in
    // memory, the rest in an unlinked file in body_temp_dir.
    bool buffer_body = true;
    std::size_t body_buffer_bytes = 1 << 20;
    std::string body_temp_dir;                 // "" until parsed: $TMPDIR, else /tmp
    std::size_t ws_max_size = 16 * 1024 * 1024;
    std::chrono::milliseconds ws_idle_timeout{60'000};
    // Peers (CIDRs) whose X-Forwarded-* / Forwarded headers are believed.
    std::vector<std::string> forwarded_allow_ips;
    std::string metrics_path;                  // empty: metrics off
    // Listeners of the metrics' own (plain HTTP): with any, the metrics are
    // served there only, at metrics_path (default /metrics), and other paths
    // there get 404.
    std::vector<std::string> metrics_binds;
    std::string health_path;                   // empty: no health checks
    std::vector<std::string> metrics_allow{"127.0.0.0/8", "::1", "unix"};
    // --dashboard (empty: off; on, it turns the metrics registry on too).
    std::string dashboard_path;
    std::vector<std::string> dashboard_allow{"127.0.0.0/8", "::1", "unix"};
    std::string dashboard_token;               // empty: the allow-list only
    std::string forwarded_headers = "x-forwarded";   // or "forwarded" (RFC 7239)

    // Worker processes (bridge/supervisor). 0 until parsed: then --workers,
    // else $WEB_CONCURRENCY, else 1.
    std::size_t workers = 0;
    bool preload = false;                      // import the apps once, in the supervisor, before forking
    // A request running longer gets an exception raised in it (WSGI) or is
    // cancelled (ASGI), and 504 if nothing was sent; 0: off.
    std::chrono::milliseconds timeout{0};
    // A WSGI thread that has not come back this long after its timeout is
    // stuck (in C code): its worker is replaced.
    std::chrono::milliseconds timeout_grace{10'000};
    std::uint64_t max_requests = 0;            // a worker that served this many is replaced; 0: never
    std::uint64_t max_requests_jitter = 0;     // plus a random 0..this, per worker
    std::size_t max_rss_mb = 0;                // a worker whose RSS passes this is replaced; 0: never
    bool reload = false;                       // development: restart the workers when a watched file changes
    std::vector<std::string> reload_dirs;      // --reload-dir; empty: the working directory (after --chdir)

    // Whether a supervisor process runs the workers: more than one, or an
    // option that replaces workers.
    bool supervised() const {
        return workers > 1 || preload || timeout.count() > 0 || max_requests > 0 || max_rss_mb > 0 || reload;
    }
};

// Parses argv, and the TOML file --config names (whose [server] keys are the
// long flags; the command line wins). On --help/--version prints and exits 0;
// on a bad flag or config prints a one-line error (FILE:LINE: for the config)
// and exits 2. Never returns with an invalid result.
options parse_options(int argc, char** argv);

// Parses a mount's target as the command line writes it: "module:app",
// "static:DIR" or "proxy:URL[,URL...]". False with `why` set when invalid.
bool parse_mount_target(const std::string& target, mount_spec& m, std::string& why);

} // namespace trestle
