#include "bridge/config/options.hpp"
#include "bridge/net/forwarded.hpp"
#include "bridge/observability/access_format.hpp"
#include "bridge/router/mount_table.hpp"

#include <CLI/CLI.hpp>
#include <toml++/toml.h>

#include <unistd.h>

#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>

namespace trestle {
namespace {

// The group of gunicorn's and uvicorn's names for Trestle's flags: they have
// no TRESTLE_* variable (one variable per setting).
const char* const compat_group = "gunicorn and uvicorn names";

std::chrono::milliseconds seconds_to_ms(double s) {
    return std::chrono::milliseconds(static_cast<long long>(s * 1000.0));
}

double ms_to_seconds(std::chrono::milliseconds ms) { return static_cast<double>(ms.count()) / 1000.0; }

[[noreturn]] void usage_error(const std::string& msg) {
    std::fprintf(stderr, "trestle: error: %s (see trestle --help)\n", msg.c_str());
    std::exit(2);
}

[[noreturn]] void config_error(const std::string& where, const std::string& msg) {
    std::fprintf(stderr, "trestle: error: %s: %s\n", where.c_str(), msg.c_str());
    std::exit(2);
}

// A bound as a person writes it: 0.1, 86400 (not 0.100000).
std::string plain(double v) {
    std::ostringstream o;
    o << v;
    return o.str();
}

// A number of seconds from lo to hi. CLI::Range is not enough for a double:
// NaN compares false both ways, so "nan" passed it, and then became an
// undefined conversion to milliseconds.
CLI::Validator seconds_in(double lo, double hi) {
    std::string range = plain(lo) + " to " + plain(hi);
    return CLI::Validator(
        [lo, hi, range](std::string& in) -> std::string {
            double v = 0;
            if (!CLI::detail::lexical_cast(in, v) || !std::isfinite(v) || v < lo || v > hi)
                return "Value " + in + " not in range " + range + " (seconds)";
            return {};
        },
        "SECONDS in [" + range + "]");
}

// An access log format, compiled to check it; the log compiles it again.
CLI::Validator access_format_check() {
    return CLI::Validator(
        [](std::string& in) -> std::string {
            std::string why;
            return access_format::compile(in, why) ? std::string() : why;
        },
        "FORMAT");
}

// Values a flag holds in another unit (seconds) until they are stored.
struct cli_values {
    double header_timeout, keepalive_timeout, io_timeout, graceful, drain_delay, startup, block_warn, ws_idle,
        body_rate_window;
    double timeout, timeout_grace, handshake_timeout;
    std::string cert_reqs;
    bool no_flask_async, no_buffer_body;
    bool proxy_headers = false;                  // uvicorn's --proxy-headers: accepted, changes nothing
    bool no_proxy_headers = false;               // uvicorn's --no-proxy-headers
    bool no_access_log = false, no_server_header = false;   // uvicorn's
    std::optional<std::string> access_logfile;   // gunicorn's --access-logfile: "-" is stdout
    std::string app;
    std::vector<std::string> mounts;
    std::vector<std::string> shadows;
    std::string config;

    explicit cli_values(const options& o)
        : header_timeout(ms_to_seconds(o.limits.header_timeout)),
          keepalive_timeout(ms_to_seconds(o.limits.keepalive_timeout)),
          io_timeout(ms_to_seconds(o.limits.io_timeout)),
          graceful(ms_to_seconds(o.graceful_timeout)), drain_delay(ms_to_seconds(o.drain_delay)),
          startup(ms_to_seconds(o.startup_timeout)),
          block_warn(ms_to_seconds(o.loop_block_warn)),
          ws_idle(ms_to_seconds(o.ws_idle_timeout)),
          body_rate_window(ms_to_seconds(o.limits.body_rate_window)),
          timeout(ms_to_seconds(o.timeout)), timeout_grace(ms_to_seconds(o.timeout_grace)),
          handshake_timeout(ms_to_seconds(o.limits.handshake_timeout)), cert_reqs(std::to_string(o.tls.cert_reqs)),
          no_flask_async(!o.flask_async), no_buffer_body(!o.buffer_body) {}

    void store(options& o) const {
        o.limits.header_timeout = seconds_to_ms(header_timeout);
        o.limits.keepalive_timeout = seconds_to_ms(keepalive_timeout);
        o.limits.io_timeout = seconds_to_ms(io_timeout);
        o.graceful_timeout = seconds_to_ms(graceful);
        o.drain_delay = seconds_to_ms(drain_delay);
        o.startup_timeout = seconds_to_ms(startup);
        o.loop_block_warn = seconds_to_ms(block_warn);
        o.ws_idle_timeout = seconds_to_ms(ws_idle);
        o.flask_async = !no_flask_async;
        o.limits.body_rate_window = seconds_to_ms(body_rate_window);
        o.timeout = seconds_to_ms(timeout);
        o.timeout_grace = seconds_to_ms(timeout_grace);
        o.limits.handshake_timeout = seconds_to_ms(handshake_timeout);
        o.tls.cert_reqs = cert_reqs == "none" ? 0 : cert_reqs == "optional" ? 1 : cert_reqs == "required" ? 2 : std::stoi(cert_reqs);
        o.buffer_body = !no_buffer_body;
        if (access_logfile) o.access_log = *access_logfile == "-" ? "/dev/stdout" : *access_logfile;
        if (no_proxy_headers) o.forwarded_allow_ips.clear();
        if (no_access_log) o.access_log.reset();
        if (no_server_header) o.server_header.clear();
    }
};

// Flags of gunicorn and uvicorn that Trestle refuses, each with the reason:
// a user who types one must learn it does nothing here, not guess.
struct refused_flag {
    const char* flag;
    const char* why;
};
const refused_flag refused_flags[] = {
    {"--limit-request-line", "Trestle limits the request line and the header lines together, with --max-header-bytes "
                             "(default 8192)"},
    {"--root-path", "Trestle sets root_path (and SCRIPT_NAME) from a mount's prefix, for requests that arrive with it: "
                    "mount the app there (trestle /api=module:app) and let the proxy keep the prefix"},
};

// Every flag. Bound to `o` and `v`; CLI11 writes only the flags it is given,
// so parsing the config's [server] keys and then argv layers them.
void build_cli(CLI::App& cli, options& o, cli_values& v) {
    cli.set_version_flag("--version", "trestle " TRESTLE_VERSION);
    cli.get_formatter()->column_width(36);
    cli.footer("Every long flag can also be set from the environment as TRESTLE_<FLAG> (TRESTLE_MAX_BODY_BYTES=1024, "
               "TRESTLE_NO_FLASK_ASYNC=1); the command line wins over it, and it over --config (also TRESTLE_CONFIG). "
               "gunicorn's --limit-request-line, and uvicorn's --limit-concurrency and --root-path are refused, "
               "with the reason. See docs/configuration.md.");
    cli.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);

    cli.add_option("app", v.app, "The root app: module:attr, module:factory() or module (attr 'application' or 'app'); "
                                 "or static:DIR, or proxy:URL");
    cli.add_option("mounts", v.mounts, "More mounts, each PREFIX=TARGET, the target as for the root app "
                                       "(/v2=newapi:app /static=static:./public /billing=proxy:http://127.0.0.1:9001): "
                                       "the longest prefix wins, on whole path segments");
    cli.add_option("--shadow", v.shadows, "PREFIX=TARGET: replay the safe requests of the mount at PREFIX (/ for the root) "
                                          "to TARGET (module:app or proxy:URL) and compare the answers; the client gets "
                                          "the mount's own (see shadow_* in docs/configuration.md)");
    cli.add_option("-c,--config", v.config, "Read settings and mounts from this TOML file (see docs/configuration.md); "
                                            "flags on the command line win");
    cli.add_option("--interface", o.interface, "auto (tell ASGI from WSGI by the callable's shape), wsgi or asgi (default auto)")
        ->check(CLI::IsMember({"auto", "wsgi", "asgi"}));
    cli.add_option("--loop", o.loop, "Event loop for ASGI apps: auto (uvloop if it imports), asyncio or uvloop (default auto)")
        ->check(CLI::IsMember({"auto", "asyncio", "uvloop"}));
    cli.add_option("--lifespan", o.lifespan, "ASGI lifespan: auto (run it if the app supports it), on or off (default auto)")
        ->check(CLI::IsMember({"auto", "on", "off"}));
    cli.add_flag("--no-flask-async", v.no_flask_async, "Leave Flask's async views to Flask (a new event loop per call, through asgiref) "
                                                       "instead of running them on the server's shared loop");
    cli.add_option("--flask-loop", o.flask_loop, "Where Flask async views run: shared (the server's one loop) or own "
                                                 "(a loop per Flask app, so a view that blocks stalls only its app) (default shared)")
        ->check(CLI::IsMember({"shared", "own"}));
    cli.add_option("--loop-block-warn", v.block_warn, "Log a warning with the loop thread's stack when the event loop is blocked "
                                                      "this many seconds; 0 turns the watchdog off (default 0.5)")
        ->check(seconds_in(0.0, 3600.0));
    cli.add_option("-b,--bind", o.binds, "Listen on HOST:PORT, [IPv6]:PORT, unix:/path or fd://N (an inherited socket); repeatable (default 127.0.0.1:8000, or systemd's LISTEN_FDS sockets)");
    cli.add_option("--insecure-bind", o.insecure_binds, "Listen for plain HTTP here, as --bind does, beside the TLS binds that "
                                                       "--certfile makes; repeatable (hypercorn's name)");
    cli.add_option("--certfile", o.tls.certfile, "TLS certificate (PEM, followed by its chain): every --bind serves HTTPS "
                                                 "(see --insecure-bind); reloaded on SIGHUP");
    cli.add_option("--keyfile", o.tls.keyfile, "The certificate's private key (PEM, not encrypted) (default: in --certfile)");
    cli.add_option("--ca-certs", o.tls.ca_certs, "CA certificates (PEM) that client certificates must chain to");
    cli.add_option("--cert-reqs", v.cert_reqs, "Client certificates: none, optional or required, or gunicorn's 0, 1, 2 "
                                               "(needs --ca-certs; default none)")
        ->check(CLI::IsMember({"0", "1", "2", "none", "optional", "required"}));
    cli.add_option("--ciphers", o.tls.ciphers, "TLS 1.2 cipher suites, in OpenSSL's syntax (default Mozilla's "
                                               "\"intermediate\" list; TLS 1.3 keeps OpenSSL's)");
    cli.add_option("--tls-min-version", o.tls.min_version, "Oldest TLS version accepted: 1.2 or 1.3 (default 1.2)")
        ->check(CLI::IsMember({"1.2", "1.3"}));
    cli.add_option("--tls-handshake-timeout", v.handshake_timeout, "Seconds a client gets to finish the TLS handshake (default 10)")
        ->check(seconds_in(0.1, 86400.0));
    cli.add_option("--http", o.http, "auto: HTTP/1.1 and HTTP/2 (ALPN h2 over TLS, prior knowledge on plain binds); "
                                     "1: HTTP/1.1 only (default auto)")
        ->check(CLI::IsMember({"auto", "1"}));
    cli.add_option("--http2-max-concurrent-streams", o.h2_max_streams, "Streams an HTTP/2 connection may have open at "
                                                                        "once; more are refused (default 100)")
        ->check(CLI::Range(1, 10000));
    cli.add_option("--forwarded-allow-ips", o.forwarded_allow_ips,
                   "Peers (IPs or CIDRs, comma-separated or repeated; '*' for any) whose X-Forwarded-For/-Proto/-Host and "
                   "Forwarded headers set the client address and scheme (default none)")
        ->delimiter(',');
    cli.add_option("--health-path", o.health_path,
                   "Serve health checks under this path on every listener: PATH/live (liveness) and PATH/ready "
                   "(readiness, 503 once a graceful stop begins) (default off)");
    cli.add_option("--metrics-path", o.metrics_path,
                   "Serve metrics in the Prometheus text format at this path on every listener, or on the "
                   "--metrics-bind listeners only (default off; /metrics with --metrics-bind)");
    cli.add_option("--metrics-bind", o.metrics_binds,
                   "Serve the metrics on a listener of their own, plain HTTP: HOST:PORT, unix:/path or fd://N; "
                   "repeatable. The other listeners then do not serve them (default off)");
    cli.add_option("--metrics-allow", o.metrics_allow,
                   "Peers (IPs or CIDRs, comma-separated or repeated; 'unix' for unix-socket peers, '*' for any) that "
                   "may read the metrics; others get 403 (default 127.0.0.0/8,::1,unix)")
        ->delimiter(',');
    cli.add_option("--dashboard", o.dashboard_path,
                   "Serve a live dashboard (metrics and shadow agreement, over Server-Sent Events) at this path on "
                   "every listener; turns metrics on (default off)");
    cli.add_option("--dashboard-allow", o.dashboard_allow,
                   "Peers (IPs or CIDRs, comma-separated or repeated; 'unix', '*') that may read the dashboard; "
                   "others get 403 unless they bring --dashboard-token (default 127.0.0.0/8,::1,unix)")
        ->delimiter(',');
    cli.add_option("--dashboard-token", o.dashboard_token,
                   "A secret that also opens the dashboard to peers outside --dashboard-allow, sent as "
                   "'Authorization: Bearer TOKEN' or '?token=TOKEN' (default none)");
    cli.add_option("--forwarded-headers", o.forwarded_headers,
                   "Which headers a trusted peer sets the client with: x-forwarded (X-Forwarded-For/-Proto, as nginx "
                   "writes them) or forwarded (RFC 7239); the other family is ignored (default x-forwarded)")
        ->check(CLI::IsMember({"x-forwarded", "forwarded"}));
    cli.add_option("--threads", o.threads, "Pool threads that run the app (default 8)")
        ->check(CLI::Range(1, 1024));
    cli.add_option("--blocking-threads", o.blocking_threads, "Most threads for the event loop's executor (asyncio.to_thread, "
                                                             "run_in_executor, Quart's sync views), started on demand (default 32)")
        ->check(CLI::Range(1, 1024));
    cli.add_option("--io-threads", o.io_threads, "Threads that run the network event loops (default 1)")
        ->check(CLI::Range(1, 64));
    cli.add_option("--max-queue", o.max_queue, "Requests that may wait for a pool thread; beyond it 503 (default 1024)")
        ->check(CLI::Range(1, 1 << 24));
    cli.add_option("--limit-concurrency", o.limit_concurrency,
                   "Requests and WebSocket sessions the apps of one process may hold at once, WSGI and ASGI alike; "
                   "beyond it 503 (default: no limit)")
        ->check(CLI::Range(1, 1 << 24));
    cli.add_option("--worker-connections", o.worker_connections,
                   "Connections one process keeps open at once; beyond it new connections wait in the listen backlog "
                   "(default: no limit)")
        ->check(CLI::Range(1, 1 << 24));
    cli.add_option("--retry-after", o.retry_after, "Retry-After seconds sent with a 503 on queue overflow (default 1)")
        ->check(CLI::Range(0, 86400));
    cli.add_option("--output-hwm", o.output_hwm, "Bytes of response output buffered per connection before the app is paused (default 262144)")
        ->check(CLI::Range(4096, 1 << 30));
    cli.add_option("--backlog", o.backlog, "listen() backlog (default 1024)")->check(CLI::Range(1, 65535));

    cli.add_option("--ws-max-size", o.ws_max_size, "Largest WebSocket message in bytes; beyond it the connection closes with 1009 (default 16777216)")
        ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 40));
    cli.add_option("--ws-idle-timeout", v.ws_idle, "Seconds a WebSocket may stay silent; pings go out at half of it, so a live peer answers (default 60)")
        ->check(seconds_in(1.0, 86400.0));
    cli.add_option("--max-header-bytes", o.limits.max_header_bytes, "Request line plus headers, in bytes; beyond it 431 (default 8192)")
        ->check(CLI::Range(256, 1 << 24));
    cli.add_option("--max-header-count", o.limits.max_header_count, "Header fields per request; beyond it 431 (default 100)")
        ->check(CLI::Range(1, 10000));
    // Checked as a signed number: "-1" must not wrap to "no limit".
    cli.add_option("--max-body-bytes", o.limits.max_body_bytes, "Request body bytes; beyond it 413 (default 1073741824)")
        ->check(CLI::Range(std::int64_t{0}, std::int64_t{1} << 40));
    cli.add_option("--body-buffer-bytes", o.body_buffer_bytes, "Bytes of a WSGI request body kept in memory while it is gathered; "
                                                               "the rest goes to a temporary file (default 1048576)")
        ->check(CLI::Range(std::size_t{0}, std::size_t{1} << 30));
    cli.add_option("--body-temp-dir", o.body_temp_dir, "Directory for the temporary files of large WSGI request bodies; "
                                                       "they are unlinked at once (default $TMPDIR, else /tmp)");
    cli.add_flag("--no-buffer-body", v.no_buffer_body, "Stream WSGI request bodies to wsgi.input as they arrive instead of "
                                                       "gathering them before the app runs (a pool thread waits for a slow upload)");
    cli.add_option("--min-body-rate", o.limits.min_body_rate, "Bytes a second a request body must keep arriving at, judged over "
                                                              "each --body-rate-window of waiting; below it 408 (0: no minimum; default 1024)")
        ->check(CLI::Range(std::uint64_t{0}, std::uint64_t{1} << 40));
    cli.add_option("--body-rate-window", v.body_rate_window, "Seconds over which --min-body-rate is judged (default 10)")
        ->check(seconds_in(0.1, 86400.0));
    cli.add_option("--header-timeout", v.header_timeout, "Seconds to receive a whole request head; then 408 and close (default 10)")
        ->check(seconds_in(0.1, 86400.0));
    cli.add_option("--keepalive-timeout", v.keepalive_timeout, "Seconds an idle keep-alive connection is kept (default 5)")
        ->check(seconds_in(0.1, 86400.0));
    cli.add_option("--io-timeout", v.io_timeout, "Seconds a body read or response write may stall before the connection is closed (default 60)")
        ->check(seconds_in(0.1, 86400.0));
    cli.add_option("--graceful-timeout", v.graceful, "Seconds in-flight requests get to finish after SIGTERM/SIGINT (default 30)")
        ->check(seconds_in(0.0, 86400.0));
    cli.add_option("--drain-delay", v.drain_delay,
                   "Seconds to keep accepting and serving after SIGTERM/SIGINT with readiness failing (--health-path), "
                   "so a load balancer stops sending before the drain begins (default 0)")
        ->check(seconds_in(0.0, 3600.0));
    cli.add_option("--startup-timeout", v.startup, "Seconds the ASGI lifespan startup and trestle.flask startup hooks get; then exit 1 (default 60)")
        ->check(seconds_in(0.1, 86400.0));

    cli.add_option("-w,--workers", o.workers, "Worker processes, each a whole server (io threads, pool, loop, its own Python) "
                                              "sharing the listeners; more than 1 starts a supervisor (default $WEB_CONCURRENCY, else 1)")
        ->check(CLI::Range(1, 1024));
    cli.add_flag("--preload", o.preload, "Import the apps once in the supervisor and fork the workers from it (copy-on-write "
                                         "memory; as in gunicorn, SIGHUP then restarts the workers from that same import: SIGUSR2 loads new code)");
    cli.add_option("-t,--timeout", v.timeout, "Seconds a request may run in the app: then an exception is raised in it (WSGI) or it "
                                              "is cancelled (ASGI), and the client gets 504 if nothing was sent; 0: off (default 0)")
        ->check(seconds_in(0.0, 86400.0));
    cli.add_option("--timeout-grace", v.timeout_grace, "Seconds a WSGI thread gets to come back after its --timeout; one that does "
                                                       "not (stuck in C code) has its worker replaced (default 10)")
        ->check(seconds_in(0.1, 86400.0));
    cli.add_option("--max-requests", o.max_requests, "Replace a worker after it has served this many requests, a new one "
                                                     "first; 0: never (default 0)")
        ->check(CLI::Range(std::uint64_t{0}, std::uint64_t{1} << 40));
    cli.add_option("--max-requests-jitter", o.max_requests_jitter, "Add a random 0..N to each worker's --max-requests, so "
                                                                   "workers are not replaced together (default 0)")
        ->check(CLI::Range(std::uint64_t{0}, std::uint64_t{1} << 40));
    cli.add_option("--max-rss", o.max_rss_mb, "Replace a worker whose resident memory passes this many MiB, checked every "
                                              "second; 0: never (default 0)")
        ->check(CLI::Range(std::size_t{0}, std::size_t{1} << 24));
    cli.add_flag("--reload", o.reload, "Development: restart the workers when a Python file under --reload-dir or the "
                                       "config file changes; a broken edit keeps the old workers serving");
    cli.add_option("--reload-dir", o.reload_dirs, "A directory --reload watches (recursively); repeatable (default the working "
                                                  "directory after --chdir)");

    cli.add_option("--chdir", o.chdir, "Change to this directory before loading the app");
    cli.add_option("--pythonpath", o.pythonpath, "Prepend a directory to sys.path; repeatable");
    cli.add_option("--venv", o.venv, "Use this virtualenv's site-packages (default: $VIRTUAL_ENV if set)");
    cli.add_option("--access-log", o.access_log, "Write an access log (see --access-log-format) to FILE, or '-' for stderr")
        ->expected(0, 1)->default_str("-");
    cli.add_option("--access-log-format", o.access_log_format,
                   "The access log's lines: combined (the combined log format plus the duration in seconds), common, "
                   "json (one object per line), or a gunicorn format string such as '%(h)s \"%(r)s\" %(s)s %(M)s' "
                   "(default combined)")
        ->check(access_format_check());
    cli.add_option("--server-header", o.server_header, "Value of the Server header; empty disables it (default trestle)");
    cli.add_option("--error-log", o.error_log, "Write the error log (Trestle's lines and everything else on stderr, "
                                               "Python tracebacks included) to FILE, appended; '-' for stderr (default -)");
    cli.add_option("--log-level", o.log_level, "debug, info, warning, error or critical (default info)")
        ->check(CLI::IsMember({"debug", "info", "warning", "error", "critical"}));

    // Other servers' names for the same settings (docs/configuration.md,
    // "Coming from gunicorn or uvicorn"), with the same checks.
    cli.add_option("--keep-alive", v.keepalive_timeout, "gunicorn's name for --keepalive-timeout")
        ->check(seconds_in(0.1, 86400.0))->group(compat_group);
    cli.add_option("--timeout-keep-alive", v.keepalive_timeout, "uvicorn's name for --keepalive-timeout")
        ->check(seconds_in(0.1, 86400.0))->group(compat_group);
    cli.add_option("--limit-request-fields", o.limits.max_header_count, "gunicorn's name for --max-header-count")
        ->check(CLI::Range(1, 10000))->group(compat_group);
    cli.add_option("--access-logfile", v.access_logfile, "gunicorn's --access-log: FILE, or '-' for stdout")
        ->group(compat_group);
    cli.add_option("--access-logformat", o.access_log_format, "gunicorn's name for --access-log-format")
        ->check(access_format_check())->group(compat_group);
    cli.add_option("--error-logfile,--log-file", o.error_log, "gunicorn's names for --error-log")->group(compat_group);
    cli.add_flag("--no-access-log", v.no_access_log, "uvicorn's: no access log (the default here)")->group(compat_group);
    cli.add_flag("--no-server-header", v.no_server_header, "uvicorn's: send no Server header (--server-header '')")
        ->group(compat_group);
    cli.add_flag("--proxy-headers", v.proxy_headers, "uvicorn's; does nothing more here: forwarded headers are believed only from "
                                    "--forwarded-allow-ips peers")->group(compat_group);
    cli.add_flag("--no-proxy-headers", v.no_proxy_headers, "uvicorn's: ignore forwarded headers (empties --forwarded-allow-ips)")
        ->group(compat_group);
    for (const refused_flag& r : refused_flags) cli.add_option(r.flag)->expected(0, 1)->group("");

    // A repeatable flag takes one value each time it is given (comma lists
    // where it has a delimiter); the words after it are the app and the
    // mounts, as in `gunicorn -b ADDR module:app`. CLI11 would otherwise give
    // them to the flag: `--metrics-bind ADDR module:app` lost its app.
    for (CLI::Option* opt : cli.get_options())
        if (!opt->get_positional() && opt->get_items_expected_max() > 1)
            opt->allow_extra_args(false)->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
}

std::string first_line(std::string what) {
    if (auto nl = what.find('\n'); nl != std::string::npos) what.resize(nl);
    return what;
}

// Runs CLI11 over `args` (argv[0] first) into `o`.
void parse_into(options& o, cli_values& v, std::vector<std::string> args) {
    CLI::App cli{"Trestle: an HTTP server for Python web apps (WSGI and ASGI), in C++."};
    build_cli(cli, o, v);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    try {
        cli.parse(static_cast<int>(argv.size()), argv.data());
    } catch (const CLI::CallForHelp& e) {
        std::exit(cli.exit(e));
    } catch (const CLI::CallForVersion& e) {
        std::exit(cli.exit(e));
    }
    for (const refused_flag& r : refused_flags)
        if (cli.count(r.flag)) throw CLI::ValidationError(r.flag, std::string("not supported: ") + r.why);
    v.store(o);
}

// True for a flag without a value (--no-proxy-headers): a [server] key
// takes true or false for it, as TRESTLE_<FLAG> takes 1 or 0.
bool takes_no_value(const std::string& flag) {
    options probe_o;
    cli_values probe_v(probe_o);
    CLI::App probe;
    build_cli(probe, probe_o, probe_v);
    for (const CLI::Option* opt : probe.get_options())
        for (const std::string& l : opt->get_lnames())
            if ("--" + l == flag) return opt->get_expected_max() == 0;
    return false;
}

// ---- the environment: TRESTLE_<FLAG> --------------------------------------

// The variable of a long flag: --max-body-bytes is TRESTLE_MAX_BODY_BYTES.
std::string env_name(const std::string& long_name) {
    std::string n = "TRESTLE_";
    for (char c : long_name) n += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return n;
}

// TRESTLE_* variables that belong to the build, test and benchmark tools,
// not to the server: they pass without a warning.
bool tool_variable(std::string_view name) {
    for (std::string_view p : {"TRESTLE_TEST_", "TRESTLE_FUZZ", "TRESTLE_PYTHON", "TRESTLE_SOAK_", "TRESTLE_UPGRADE_"})
        if (name.starts_with(p)) return true;
    // TRESTLE_SHADOW_PROCESS: set by a server for its shadow_process child.
    for (std::string_view n : {"TRESTLE_BIN", "TRESTLE_SOURCE_DIR", "TRESTLE_SANITIZED", "TRESTLE_ARGS",
                               "TRESTLE_SHADOW_PROCESS"})
        if (name == n) return true;
    return false;
}

std::optional<bool> truth(std::string v) {
    for (char& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (v == "1" || v == "true" || v == "yes" || v == "on") return true;
    if (v == "0" || v == "false" || v == "no" || v == "off") return false;
    return std::nullopt;
}

// Applies every TRESTLE_<FLAG> variable to `o`, each parsed as that flag
// alone (with its checks), so an error names the variable. The variables are
// derived from the flags themselves: a new flag has one without more code.
void load_environment(options& o) {
    options probe_o;
    cli_values probe_v(probe_o);
    CLI::App probe;
    build_cli(probe, probe_o, probe_v);
    std::map<std::string, const CLI::Option*> known;
    for (const CLI::Option* opt : probe.get_options()) {
        // Positionals have no long name; hidden ones (group "") are refusals.
        if (opt->get_lnames().empty() || opt->get_group().empty() || opt->get_group() == compat_group) continue;
        const std::string& name = opt->get_lnames().front();
        if (name == "help" || name == "version" || name == "config") continue;   // TRESTLE_CONFIG: find_config
        known.emplace(env_name(name), opt);
    }
    std::map<std::string, std::string> given;   // sorted: the same order every run
    for (char** e = environ; *e; ++e) {
        std::string_view kv(*e);
        auto eq = kv.find('=');
        if (!kv.starts_with("TRESTLE_") || eq == std::string_view::npos) continue;
        given.emplace(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
    }
    for (auto& [name, value] : given) {
        if (name == "TRESTLE_CONFIG" || tool_variable(name)) continue;
        auto it = known.find(name);
        if (it == known.end()) {
            // A typo must not be silent; a warning, not an error, because
            // the variable may be meant for another version of Trestle.
            std::fprintf(stderr, "trestle: warning: unknown variable %s ignored (a setting is TRESTLE_ and its long flag, "
                                 "such as TRESTLE_THREADS)\n", name.c_str());
            continue;
        }
        const CLI::Option* opt = it->second;
        std::string flag = "--" + opt->get_lnames().front();
        std::vector<std::string> args{"trestle"};
        if (opt->get_expected_max() == 0) {   // a flag
            std::optional<bool> on = truth(value);
            if (!on) config_error(name, "expected 1, true, yes or on, or 0, false, no or off, not '" + value + "'");
            args.push_back(*on ? flag : flag + "=false");
        } else if (opt->get_multi_option_policy() == CLI::MultiOptionPolicy::TakeAll) {
            // A repeatable flag: its values separated by commas or whitespace.
            std::size_t pos = 0;
            while ((pos = value.find_first_not_of(", \t\n", pos)) != std::string::npos) {
                std::size_t end = value.find_first_of(", \t\n", pos);
                args.push_back(flag + "=" + value.substr(pos, end == std::string::npos ? end : end - pos));
                pos = end;
            }
            if (args.size() == 1) continue;   // empty: as if unset
        } else {
            args.push_back(flag + "=" + value);
        }
        cli_values v(o);
        try {
            parse_into(o, v, args);
        } catch (const CLI::ParseError& e) {
            config_error(name, first_line(e.what()));
        }
    }
}

// ---- the config file ------------------------------------------------------

std::string where(const std::string& file, const toml::source_region& src) {
    return file + ":" + std::to_string(src.begin.line);
}

// A [server] value as the flag's argument(s); false if it has the wrong type.
bool flag_args(const toml::node& n, std::vector<std::string>& out) {
    if (auto s = n.value_exact<std::string>()) out.push_back(*s);
    else if (auto i = n.value_exact<std::int64_t>()) out.push_back(std::to_string(*i));
    else if (auto d = n.value_exact<double>()) out.push_back(std::to_string(*d));
    else if (const toml::array* a = n.as_array()) {
        for (const toml::node& e : *a)
            if (e.is_array() || e.is_table() || !flag_args(e, out)) return false;
    } else {
        return false;
    }
    return true;
}

double seconds_value(const toml::node& n, const std::string& at, const std::string& key) {
    auto d = n.value<double>();
    if (!d || !std::isfinite(*d) || *d <= 0 || *d > 86400)   // nan compares false: refused explicitly
        config_error(at, key + " must be a number of seconds (0 < s <= 86400)");
    return *d;
}

std::string string_value(const toml::node& n, const std::string& at, const std::string& key) {
    auto s = n.value_exact<std::string>();
    if (!s) config_error(at, key + " must be a string");
    return *s;
}

bool bool_value(const toml::node& n, const std::string& at, const std::string& key) {
    auto b = n.value_exact<bool>();
    if (!b) config_error(at, key + " must be true or false");
    return *b;
}

std::int64_t int_value(const toml::node& n, const std::string& at, const std::string& key, std::int64_t lo, std::int64_t hi) {
    auto i = n.value_exact<std::int64_t>();
    if (!i || *i < lo || *i > hi)
        config_error(at, key + " must be an integer from " + std::to_string(lo) + " to " + std::to_string(hi));
    return *i;
}

std::vector<std::string> string_list(const toml::node& n, const std::string& at, const std::string& key) {
    const toml::array* a = n.as_array();
    std::vector<std::string> out;
    if (a)
        for (const toml::node& e : *a) {
            auto s = e.value_exact<std::string>();
            if (!s || s->empty()) {
                a = nullptr;
                break;
            }
            out.push_back(*s);
        }
    if (!a) config_error(at, key + " must be a list of strings");
    return out;
}

// A relative path in a config file means relative to the file's folder,
// made absolute now: `chdir` may move the working directory before it is used.
std::string beside(const std::string& file, const std::string& path) {
    if (path.empty() || path.front() == '/') return path;
    std::error_code ec;
    std::filesystem::path dir = std::filesystem::absolute(file, ec).parent_path();
    if (ec) return path;
    return (dir / path).lexically_normal().string();
}

// A proxy mount's `upgrades`: a list of protocol names (RFC 9110 7.8: a
// token, optionally "/version"), lower-cased, as they are compared.
std::vector<std::string> upgrade_list(const toml::node& node, const std::string& at) {
    const toml::array* a = node.as_array();
    if (!a) config_error(at, "upgrades must be a list of protocol names, such as [\"websocket\"]");
    std::vector<std::string> out;
    for (const toml::node& v : *a) {
        const std::string* s = v.is_string() ? &v.as_string()->get() : nullptr;
        bool ok = s && !s->empty();
        for (char c : ok ? *s : std::string()) {
            bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
            if (!alnum && std::string_view("!#$%&'*+-.^_`|~/").find(c) == std::string_view::npos) ok = false;
        }
        if (!ok) config_error(at, "upgrades must be a list of protocol names, such as [\"websocket\"]");
        std::string name = *s;
        for (char& c : name)
            if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        out.push_back(std::move(name));
    }
    return out;
}

// A shadow's target: module:app or proxy:URL (never static files).
std::shared_ptr<mount_spec> shadow_target(const std::string& target, const std::string& origin, std::string& why) {
    auto t = std::make_shared<mount_spec>();
    t->origin = origin;
    t->shadow_target = true;
    if (target.starts_with("static:")) {
        why = "a shadow must be module:app or proxy:URL";
        return nullptr;
    }
    if (!parse_mount_target(target, *t, why)) return nullptr;
    return t;
}

// One shadow or shadow_* key of a [[mount]] table.
void parse_shadow_key(mount_spec& m, const std::string& k, const toml::node& node, const std::string& file,
                      const std::string& kat) {
    if (!m.shadow) m.shadow.emplace();
    shadow_options& sh = *m.shadow;
    if (k == "shadow") {
        std::string why;
        sh.target = shadow_target(string_value(node, kat, k), kat, why);
        if (!sh.target) config_error(kat, "shadow: " + why);
    } else if (k == "shadow_interface") {
        std::string v = string_value(node, kat, k);
        if (v != "auto" && v != "wsgi" && v != "asgi") config_error(kat, "shadow_interface must be auto, wsgi or asgi");
        if (!sh.target) config_error(kat, "write shadow = \"module:app\" before shadow_interface");
        sh.target->interface = v;
    } else if (k == "shadow_methods") {
        sh.methods = string_list(node, kat, k);
        for (auto& meth : sh.methods)
            for (char& c : meth) {
                if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
                if (c < 'A' || c > 'Z') config_error(kat, "shadow_methods must be method names, such as [\"GET\", \"POST\"]");
            }
    } else if (k == "shadow_routes") {
        sh.routes = string_list(node, kat, k);
        for (auto& r : sh.routes)
            if (r.front() != '/') config_error(kat, "shadow_routes are paths under the mount, starting with / (\"/orders/*\")");
    } else if (k == "shadow_sample") {
        auto d = node.value<double>();
        if (!d || !std::isfinite(*d) || *d < 0 || *d > 1) config_error(kat, "shadow_sample must be a number from 0 to 1");
        sh.sample = *d;
    } else if (k == "shadow_queue") {
        sh.queue = static_cast<std::size_t>(int_value(node, kat, k, 1, 100000));
    } else if (k == "shadow_concurrency") {
        sh.concurrency = static_cast<std::size_t>(int_value(node, kat, k, 1, 10000));
    } else if (k == "shadow_headers") {
        sh.headers = string_list(node, kat, k);
        for (auto& h : sh.headers)
            for (char& c : h) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    } else if (k == "shadow_ignore") {
        sh.ignore = string_list(node, kat, k);
    } else if (k == "shadow_normalizer") {
        sh.normalizer = string_value(node, kat, k);
        if (sh.normalizer.find(':') == std::string::npos) config_error(kat, "shadow_normalizer must be module:function");
    } else if (k == "shadow_keep") {
        sh.keep = static_cast<std::size_t>(int_value(node, kat, k, 0, 10000));
    } else if (k == "shadow_log") {
        sh.log = beside(file, string_value(node, kat, k));
        if (sh.log.empty()) config_error(kat, "shadow_log must name a file");
    } else if (k == "shadow_timeout") {
        sh.timeout = seconds_to_ms(seconds_value(node, kat, k));
    } else if (k == "shadow_max_body") {
        sh.max_body = static_cast<std::size_t>(int_value(node, kat, k, 0, 1ll << 30));
    } else if (k == "shadow_process") {
        sh.process = bool_value(node, kat, k);
    } else {
        config_error(kat, "unknown mount key '" + k + "'");
    }
}

mount_spec parse_mount_table(const toml::table& t, const std::string& file, const std::string& at) {
    mount_spec m;
    m.origin = at;
    const char* kinds[] = {"app", "static", "proxy"};
    int given = 0;
    for (const char* k : kinds) given += t.contains(k) ? 1 : 0;
    if (given != 1) config_error(at, "a [[mount]] needs exactly one of app, static or proxy");
    if (!t.contains("prefix")) config_error(at, "a [[mount]] needs a prefix (\"/\" for the root)");

    for (auto&& [key, node] : t) {
        std::string k(key.str());
        std::string kat = where(file, node.source());
        if (k == "prefix") {
            m.prefix = string_value(node, kat, k);
            std::string why;
            if (!router::normalize_prefix(m.prefix, why)) config_error(kat, "prefix '" + m.prefix + "' " + why);
        } else if (k == "app") {
            m.type = mount_spec::kind::app;
            m.app = string_value(node, kat, k);
            if (m.app.empty()) config_error(kat, "app must be module:attr");
        } else if (k == "interface") {
            m.interface = string_value(node, kat, k);
            if (m.interface != "auto" && m.interface != "wsgi" && m.interface != "asgi")
                config_error(kat, "interface must be auto, wsgi or asgi");
        } else if (k == "flask_async") {
            m.flask_async = bool_value(node, kat, k);
        } else if (k == "flask_loop") {
            m.flask_loop = string_value(node, kat, k);
            if (*m.flask_loop != "shared" && *m.flask_loop != "own") config_error(kat, "flask_loop must be \"shared\" or \"own\"");
        } else if (k == "buffer_body") {
            m.buffer_body = bool_value(node, kat, k);
        } else if (k == "static") {
            m.type = mount_spec::kind::static_files;
            m.files.root = beside(file, string_value(node, kat, k));
            if (m.files.root.empty()) config_error(kat, "static must name a directory");
        } else if (k == "index") {
            m.files.index = string_value(node, kat, k);
            if (m.files.index.find('/') != std::string::npos) config_error(kat, "index must be a file name, not a path");
        } else if (k == "cache_control") {
            m.files.cache_control = string_value(node, kat, k);
            for (unsigned char c : m.files.cache_control)
                if (c < 0x20 || c == 0x7f) config_error(kat, "cache_control holds a control character");
        } else if (k == "follow_symlinks") {
            m.files.follow_symlinks = bool_value(node, kat, k);
        } else if (k == "precompressed") {
            m.files.precompressed = bool_value(node, kat, k);
        } else if (k == "proxy") {
            m.type = mount_spec::kind::proxy;
            std::vector<std::string> urls;
            if (!flag_args(node, urls) || urls.empty()) config_error(kat, "proxy must be a URL or a list of URLs");
            std::string joined;
            for (auto& u : urls) joined += (joined.empty() ? "" : ",") + u;
            std::string why;
            if (!parse_mount_target("proxy:" + joined, m, why)) config_error(kat, why);
        } else if (k == "connect_timeout") {
            m.proxy.connect_timeout = seconds_to_ms(seconds_value(node, kat, k));
        } else if (k == "read_timeout") {
            m.proxy.read_timeout = seconds_to_ms(seconds_value(node, kat, k));
        } else if (k == "fail_timeout") {
            m.proxy.fail_timeout = seconds_to_ms(seconds_value(node, kat, k));
        } else if (k == "max_fails") {
            m.proxy.max_fails = static_cast<unsigned>(int_value(node, kat, k, 0, 1000));
        } else if (k == "max_idle") {
            m.proxy.max_idle = static_cast<std::size_t>(int_value(node, kat, k, 0, 100000));
        } else if (k == "preserve_host") {
            m.proxy.preserve_host = bool_value(node, kat, k);
        } else if (k == "upgrades") {
            m.proxy.upgrades = upgrade_list(node, kat);
        } else if (k == "shadow" || k.starts_with("shadow_")) {
            parse_shadow_key(m, k, node, file, kat);
        } else {
            config_error(kat, "unknown mount key '" + k + "'");
        }
    }
    // Keys that belong to another kind of mount are a mistake worth naming.
    auto only_for = [&](std::initializer_list<const char*> keys, mount_spec::kind kind, const char* what) {
        for (const char* k : keys)
            if (t.contains(k) && m.type != kind) config_error(where(file, t.at(k).source()), std::string(k) + " applies to " + what + " mounts only");
    };
    only_for({"interface", "flask_async", "flask_loop", "buffer_body"}, mount_spec::kind::app, "app");
    if (m.shadow && !m.shadow->target) config_error(at, "shadow_* settings need shadow = \"module:app\" or \"proxy:URL\"");
    if (m.shadow && m.type == mount_spec::kind::static_files) config_error(at, "shadow applies to app and proxy mounts only");
    if (m.shadow) m.shadow->target->prefix = m.prefix;
    if (m.shadow && m.shadow->target->type != mount_spec::kind::app) {
        if (t.contains("shadow_process") && m.shadow->process)
            config_error(at, "shadow_process runs a module:app shadow in a process of its own; a proxy shadow already has one");
        m.shadow->process = false;
    }
    only_for({"index", "cache_control", "follow_symlinks", "precompressed"}, mount_spec::kind::static_files, "static");
    only_for({"connect_timeout", "read_timeout", "fail_timeout", "max_fails", "max_idle", "preserve_host", "upgrades"},
             mount_spec::kind::proxy, "proxy");
    return m;
}

// Reads FILE into `o`: [server] through the flags, [[mount]] into o.mounts.
void load_config(const std::string& file, options& o) {
    toml::table root;
    try {
        root = toml::parse_file(file);
    } catch (const toml::parse_error& e) {
        if (!e.source().begin) config_error(file, std::string(e.description()));
        config_error(where(file, e.source()), std::string(e.description()));
    }
    for (auto&& [key, node] : root) {
        std::string k(key.str());
        std::string at = where(file, key.source());
        if (k == "server" || k == "health" || k == "metrics" || k == "dashboard") {
            // [server] keys are the flags' names; [health], [metrics] and
            // [dashboard] keys are those of --health-*, --metrics-* and
            // --dashboard-* ([dashboard] path is --dashboard itself).
            const toml::table* table = node.as_table();
            if (!table) config_error(at, k + " must be a table: [" + k + "]");
            std::string prefix = k == "server" ? "--" : "--" + k + "-";
            for (auto&& [skey, value] : *table) {
                std::string sk(skey.str());
                std::string sat = where(file, skey.source());
                std::vector<std::string> args{"trestle"};
                if (sk == "config" || sk == "help" || sk == "version") config_error(sat, "'" + sk + "' cannot be set in a config file");
                if (k == "server" && sk == "flask_async") {
                    if (!bool_value(value, sat, sk)) args.push_back("--no-flask-async");
                } else if (k == "server" && sk == "buffer_body") {
                    if (!bool_value(value, sat, sk)) args.push_back("--no-buffer-body");
                } else {
                    std::string flag = k == "dashboard" && sk == "path" ? "--dashboard" : prefix + sk;
                    for (char& c : flag) c = c == '_' ? '-' : c;
                    if (flag == "--no-flask-async") config_error(sat, "write flask_async = false");
                    if (flag == "--no-buffer-body") config_error(sat, "write buffer_body = false");
                    std::vector<std::string> vals;
                    if (auto b = value.value_exact<bool>(); b && takes_no_value(flag)) args.push_back(*b ? flag : flag + "=false");
                    else if (!flag_args(value, vals)) config_error(sat, sk + " has a value of the wrong type");
                    if (sk == "chdir" || sk == "pythonpath" || sk == "venv" || sk == "body_temp_dir" || sk == "certfile" ||
                        sk == "keyfile" || sk == "ca_certs")
                        for (auto& val : vals) val = beside(file, val);
                    for (auto& val : vals) args.push_back(flag + "=" + val);
                    if (vals.empty() && args.size() == 1) args.push_back(flag);
                }
                cli_values v(o);
                try {
                    parse_into(o, v, args);
                } catch (const CLI::ParseError& e) {
                    std::string what = first_line(e.what());
                    if (dynamic_cast<const CLI::ExtrasError*>(&e)) what = "unknown setting '" + sk + "'" + (k == "server" ? "" : " in [" + k + "]");
                    config_error(sat, what);
                }
            }
        } else if (k == "mount") {
            const toml::array* list = node.as_array();
            if (!list || !list->is_array_of_tables()) config_error(at, "mounts are written as [[mount]] tables");
            for (const toml::node& t : *list) {
                mount_spec m = parse_mount_table(*t.as_table(), file, where(file, t.source()));
                for (auto& other : o.mounts)
                    if (other.prefix == m.prefix)
                        config_error(m.origin, "prefix '" + (m.prefix.empty() ? "/" : m.prefix) + "' is already mounted at " + other.origin);
                o.mounts.push_back(std::move(m));
            }
        } else {
            config_error(at, "unknown table or key '" + k + "' (expected [server], [health], [metrics], [dashboard] and [[mount]])");
        }
    }
}

// The value of --config/-c in argv, if any; CLI11 sees the flag again later.
std::string find_config(int argc, char** argv) {
    std::string file;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a == "--") break;
        if ((a == "--config" || a == "-c") && i + 1 < argc) file = argv[++i];
        else if (a.starts_with("--config=")) file = std::string(a.substr(9));
    }
    return file;
}

// --dashboard and its settings, once the mounts are known. `own_path`
// checks a path of the server's own as --metrics-path's is checked.
template <class OwnPath>
void check_dashboard(options& o, OwnPath&& own_path) {
    if (o.dashboard_path.empty()) {
        if (!o.dashboard_token.empty()) usage_error("--dashboard-token needs --dashboard");
        return;
    }
    own_path(o.dashboard_path, "--dashboard", "dashboard's pages");
    for (const std::string* other : {&o.metrics_path, &o.health_path})
        if (*other == o.dashboard_path) usage_error("--dashboard " + o.dashboard_path + ": another of the server's paths");
    net::trusted_proxies allow;
    if (std::string why; !allow.parse(o.dashboard_allow, why)) usage_error("--dashboard-allow: " + why);
    for (char c : o.dashboard_token)
        if (c <= ' ' || c > '~') usage_error("--dashboard-token: visible ASCII characters only (no spaces)");
}

} // namespace

std::string mount_spec::describe() const {
    switch (type) {
    case kind::static_files: return "static:" + files.root;
    case kind::proxy: {
        std::string s = "proxy:";
        for (std::size_t i = 0; i < proxy.upstreams.size(); ++i) s += (i ? "," : "") + proxy.upstreams[i];
        return s;
    }
    case kind::app: break;
    }
    return app;
}

bool parse_mount_target(const std::string& target, mount_spec& m, std::string& why) {
    if (target.starts_with("static:")) {
        m.type = mount_spec::kind::static_files;
        m.files.root = target.substr(7);
        if (m.files.root.empty()) {
            why = "static: needs a directory";
            return false;
        }
        return true;
    }
    if (target.starts_with("proxy:")) {
        m.type = mount_spec::kind::proxy;
        m.proxy.upstreams.clear();
        std::string rest = target.substr(6);
        std::size_t pos = 0;
        while (pos <= rest.size()) {
            std::size_t comma = rest.find(',', pos);
            std::string url = rest.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
            if (!url.starts_with("http://") || url.size() <= 7 || url[7] == '/') {
                why = "proxy upstream '" + url + "' must be an http://HOST[:PORT][/PATH] URL";
                return false;
            }
            m.proxy.upstreams.push_back(url);
            if (comma == std::string::npos) break;
            pos = comma + 1;
        }
        return true;
    }
    m.type = mount_spec::kind::app;
    m.app = target;
    if (target.empty()) {
        why = "expected module:app, static:DIR or proxy:URL";
        return false;
    }
    return true;   // the loader names what is wrong with a bad module:app

}

options parse_options(int argc, char** argv) {
    options o;
    // Layers, each over the one before: the config file, the environment,
    // the command line.
    std::string config = find_config(argc, argv);
    if (const char* env = std::getenv("TRESTLE_CONFIG"); config.empty() && env && *env) config = env;
    if (!config.empty()) {
        load_config(config, o);
        o.config_file = config;
    }
    load_environment(o);

    cli_values v(o);
    try {
        parse_into(o, v, std::vector<std::string>(argv, argv + argc));
    } catch (const CLI::ParseError& e) {
        usage_error(first_line(e.what()));
    }

    // With the root app in a config file, the first positional may be a mount.
    if (v.app.starts_with('/') && v.app.find('=') != std::string::npos) {
        v.mounts.insert(v.mounts.begin(), v.app);
        v.app.clear();
    }
    if (!v.app.empty()) {
        mount_spec root;
        root.origin = "the command line";
        std::string why;
        if (!parse_mount_target(v.app, root, why)) usage_error("app '" + v.app + "': " + why);
        // The command line's root app replaces the config file's.
        std::erase_if(o.mounts, [](const mount_spec& m) { return m.prefix.empty(); });
        o.mounts.insert(o.mounts.begin(), std::move(root));
    }
    for (auto& arg : v.mounts) {
        auto eq = arg.find('=');
        mount_spec m;
        m.origin = "the command line";
        m.prefix = arg.substr(0, eq == std::string::npos ? 0 : eq);
        std::string why;
        if (eq == std::string::npos || eq + 1 == arg.size())
            usage_error("mount '" + arg + "': expected /PREFIX=TARGET (module:app, static:DIR or proxy:URL)");
        if (!router::normalize_prefix(m.prefix, why)) usage_error("mount '" + arg + "': the prefix " + why);
        if (m.prefix.empty()) usage_error("mount '" + arg + "': expected /PREFIX=TARGET (module:app, static:DIR or proxy:URL)");
        if (!parse_mount_target(arg.substr(eq + 1), m, why)) usage_error("mount '" + arg + "': " + why);
        for (auto& other : o.mounts)
            if (other.prefix == m.prefix && other.origin == m.origin)
                usage_error("mount '" + arg + "': prefix " + m.prefix + " is mounted twice");
        // A mount on the command line replaces the config file's at that prefix.
        std::erase_if(o.mounts, [&](const mount_spec& other) { return other.prefix == m.prefix; });
        o.mounts.push_back(std::move(m));
    }
    if (o.mounts.empty()) usage_error("no app given: name one (module:app), or mounts in --config");
    for (auto& arg : v.shadows) {
        auto eq = arg.find('=');
        if (eq == std::string::npos || eq == 0 || eq + 1 == arg.size())
            usage_error("--shadow '" + arg + "': expected PREFIX=TARGET (/orders=newapi:app, or proxy:URL)");
        std::string prefix = arg.substr(0, eq), why;
        if (!router::normalize_prefix(prefix, why)) usage_error("--shadow '" + arg + "': the prefix " + why);
        auto m = std::find_if(o.mounts.begin(), o.mounts.end(), [&](const mount_spec& s) { return s.prefix == prefix; });
        if (m == o.mounts.end()) usage_error("--shadow '" + arg + "': no mount at " + (prefix.empty() ? "/" : prefix));
        if (m->type == mount_spec::kind::static_files) usage_error("--shadow '" + arg + "': shadows apply to app and proxy mounts only");
        auto target = shadow_target(arg.substr(eq + 1), "the command line", why);
        if (!target) usage_error("--shadow '" + arg + "': " + why);
        target->prefix = m->prefix;
        if (!m->shadow) m->shadow.emplace();
        m->shadow->target = std::move(target);
        if (m->shadow->target->type != mount_spec::kind::app) m->shadow->process = false;
    }

    for (auto& cidr : o.forwarded_allow_ips)
        if (cidr.empty()) usage_error("--forwarded-allow-ips: empty entry");
    // The server's own paths: each a prefix of its own, like a mount's.
    auto own_path = [&](std::string& path, const std::string& flag, const char* what) {
        if (path.empty()) return;
        std::string why;
        if (path[0] != '/') usage_error(flag + " " + path + ": must start with /");
        if (!router::normalize_prefix(path, why)) usage_error(flag + ": " + why);
        if (path.empty()) usage_error(flag + " /: the " + what + " need a path of their own");
        for (auto& m : o.mounts)
            if (m.prefix == path) usage_error(flag + " " + path + ": a mount has that prefix");
    };
    if (!o.metrics_binds.empty() && o.metrics_path.empty()) o.metrics_path = "/metrics";
    own_path(o.metrics_path, "--metrics-path", "metrics");
    own_path(o.health_path, "--health-path", "health checks");
    if (!o.health_path.empty() && o.health_path == o.metrics_path)
        usage_error("--health-path and --metrics-path are both " + o.health_path);
    check_dashboard(o, own_path);
    if (o.workers == 0) {
        // gunicorn's default for --workers (Heroku and others set it).
        o.workers = 1;
        if (const char* env = std::getenv("WEB_CONCURRENCY"); env && *env) {
            char* end = nullptr;
            long n = std::strtol(env, &end, 10);
            if (*end != '\0' || n < 1 || n > 1024) usage_error(std::string("WEB_CONCURRENCY: expected a worker count from 1 to 1024, not '") + env + "'");
            o.workers = static_cast<std::size_t>(n);
        }
    }
    if (o.binds.empty() && o.insecure_binds.empty()) o.binds_defaulted = true, o.binds.push_back("127.0.0.1:8000");
    if (!o.tls.keyfile.empty() && !o.tls.enabled()) usage_error("--keyfile needs --certfile");
    o.tls.h2 = o.http == "auto";
    if (o.tls.cert_reqs > 0 && o.tls.ca_certs.empty()) usage_error("--cert-reqs needs --ca-certs, the CAs to check client certificates with");
    if (!o.tls.ca_certs.empty() && !o.tls.enabled()) usage_error("--ca-certs needs --certfile");
    if (o.access_log && o.access_log->empty()) o.access_log = "-";
    if (o.venv.empty()) {
        if (const char* env = std::getenv("VIRTUAL_ENV"); env && *env) o.venv = env;
    }
    if (o.preread_bytes > o.output_hwm) o.preread_bytes = o.output_hwm;
    if (o.body_temp_dir.empty()) {
        const char* env = std::getenv("TMPDIR");
        o.body_temp_dir = env && *env ? env : "/tmp";
    }
    if (std::error_code ec; o.body_temp_dir.front() != '/') {   // before --chdir moves us
        auto abs = std::filesystem::absolute(o.body_temp_dir, ec);
        if (!ec) o.body_temp_dir = abs.lexically_normal().string();
    }
    // Checked now rather than at the first large upload (nginx does the same
    // for client_body_temp_path).
    if (std::error_code ec; !std::filesystem::is_directory(o.body_temp_dir, ec))
        usage_error("--body-temp-dir: '" + o.body_temp_dir + "' is not a directory");
    return o;
}

} // namespace trestle
