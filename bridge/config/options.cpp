#include "bridge/config/options.hpp"
#include "bridge/router/mount_table.hpp"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstdlib>

namespace trestle {
namespace {

std::chrono::milliseconds seconds_to_ms(double s) {
    return std::chrono::milliseconds(static_cast<long long>(s * 1000.0));
}

[[noreturn]] void usage_error(const std::string& msg) {
    std::fprintf(stderr, "trestle: error: %s (see trestle --help)\n", msg.c_str());
    std::exit(2);
}

} // namespace

options parse_options(int argc, char** argv) {
    options o;
    CLI::App cli{"Trestle: an HTTP server for Python web apps (WSGI and ASGI), in C++."};
    cli.set_version_flag("--version", "trestle " TRESTLE_VERSION);
    cli.get_formatter()->column_width(36);

    cli.add_option("app", o.app, "The app: module:attr, module:factory() or module (attr 'application' or 'app')")
        ->required();
    std::vector<std::string> mounts;
    cli.add_option("mounts", mounts, "More apps, each as PREFIX=APP (e.g. /v2=newapi:app): the longest prefix wins, "
                                     "on whole path segments; the prefix becomes SCRIPT_NAME (WSGI) or root_path (ASGI)");
    cli.add_option("--interface", o.interface, "auto (tell ASGI from WSGI by the callable's shape), wsgi or asgi (default auto)")
        ->check(CLI::IsMember({"auto", "wsgi", "asgi"}));
    cli.add_option("--loop", o.loop, "Event loop for ASGI apps: auto (uvloop if it imports), asyncio or uvloop (default auto)")
        ->check(CLI::IsMember({"auto", "asyncio", "uvloop"}));
    cli.add_option("--lifespan", o.lifespan, "ASGI lifespan: auto (run it if the app supports it), on or off (default auto)")
        ->check(CLI::IsMember({"auto", "on", "off"}));
    bool no_flask_async = false;
    cli.add_flag("--no-flask-async", no_flask_async, "Leave Flask's async views to Flask (a new event loop per call, through asgiref) "
                                                     "instead of running them on the server's shared loop");
    cli.add_option("-b,--bind", o.binds, "Listen on HOST:PORT, [IPv6]:PORT or unix:/path; repeatable (default 127.0.0.1:8000)")
        ->allow_extra_args(false)->take_all();
    cli.add_option("-t,--threads", o.threads, "Pool threads that run the app (default 8)")
        ->check(CLI::Range(1, 1024));
    cli.add_option("--io-threads", o.io_threads, "Threads that run the network event loops (default 1)")
        ->check(CLI::Range(1, 64));
    cli.add_option("--max-queue", o.max_queue, "Requests that may wait for a pool thread; beyond it 503 (default 1024)")
        ->check(CLI::Range(1, 1 << 24));
    cli.add_option("--retry-after", o.retry_after, "Retry-After seconds sent with a 503 on queue overflow (default 1)");
    cli.add_option("--output-hwm", o.output_hwm, "Bytes of response output buffered per connection before the app is paused (default 262144)")
        ->check(CLI::Range(4096, 1 << 30));
    cli.add_option("--backlog", o.backlog, "listen() backlog (default 1024)")->check(CLI::Range(1, 65535));

    double header_timeout = 10, keepalive_timeout = 5, io_timeout = 60, graceful = 30, ws_idle = 60;
    cli.add_option("--ws-max-size", o.ws_max_size, "Largest WebSocket message in bytes; beyond it the connection closes with 1009 (default 16777216)")
        ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 40));
    cli.add_option("--ws-idle-timeout", ws_idle, "Seconds a WebSocket may stay silent; pings go out at half of it, so a live peer answers (default 60)")
        ->check(CLI::Range(1.0, 86400.0));
    cli.add_option("--max-header-bytes", o.limits.max_header_bytes, "Request line plus headers, in bytes; beyond it 431 (default 8192)")
        ->check(CLI::Range(256, 1 << 24));
    cli.add_option("--max-header-count", o.limits.max_header_count, "Header fields per request; beyond it 431 (default 100)")
        ->check(CLI::Range(1, 10000));
    cli.add_option("--max-body-bytes", o.limits.max_body_bytes, "Request body bytes; beyond it 413 (default 1073741824)");
    cli.add_option("--header-timeout", header_timeout, "Seconds to receive a whole request head; then 408 and close (default 10)")
        ->check(CLI::Range(0.1, 86400.0));
    cli.add_option("--keepalive-timeout", keepalive_timeout, "Seconds an idle keep-alive connection is kept (default 5)")
        ->check(CLI::Range(0.1, 86400.0));
    cli.add_option("--io-timeout", io_timeout, "Seconds a body read or response write may stall before the connection is closed (default 60)")
        ->check(CLI::Range(0.1, 86400.0));
    cli.add_option("--graceful-timeout", graceful, "Seconds in-flight requests get to finish after SIGTERM/SIGINT (default 30)")
        ->check(CLI::Range(0.0, 86400.0));

    cli.add_option("--chdir", o.chdir, "Change to this directory before loading the app");
    cli.add_option("--pythonpath", o.pythonpath, "Prepend a directory to sys.path; repeatable")
        ->allow_extra_args(false)->take_all();
    cli.add_option("--venv", o.venv, "Use this virtualenv's site-packages (default: $VIRTUAL_ENV if set)");
    cli.add_option("--access-log", o.access_log, "Write an access log (combined format plus duration) to FILE, or '-' for stderr")
        ->expected(0, 1)->default_str("-");
    cli.add_option("--server-header", o.server_header, "Value of the Server header; empty disables it (default trestle)");
    cli.add_option("--log-level", o.log_level, "debug, info, warning or error (default info)")
        ->check(CLI::IsMember({"debug", "info", "warning", "error"}));

    try {
        cli.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        std::exit(cli.exit(e));
    } catch (const CLI::CallForVersion& e) {
        std::exit(cli.exit(e));
    } catch (const CLI::ParseError& e) {
        std::string what = e.what();
        if (auto nl = what.find('\n'); nl != std::string::npos) what.resize(nl);
        usage_error(what);
    }
    for (auto& m : mounts) {
        auto eq = m.find('=');
        std::string prefix = m.substr(0, eq == std::string::npos ? 0 : eq);
        if (eq == std::string::npos || eq + 1 == m.size() || !router::normalize_prefix(prefix) || prefix.empty())
            usage_error("mount '" + m + "': expected /PREFIX=module:app");
        for (auto& [p, _] : o.mounts)
            if (p == prefix) usage_error("mount '" + m + "': prefix " + prefix + " is mounted twice");
        o.mounts.emplace_back(prefix, m.substr(eq + 1));
    }
    o.flask_async = !no_flask_async;
    if (o.binds.empty()) o.binds.push_back("127.0.0.1:8000");
    if (o.access_log && o.access_log->empty()) o.access_log = "-";
    o.limits.header_timeout = seconds_to_ms(header_timeout);
    o.limits.keepalive_timeout = seconds_to_ms(keepalive_timeout);
    o.limits.io_timeout = seconds_to_ms(io_timeout);
    o.graceful_timeout = seconds_to_ms(graceful);
    o.ws_idle_timeout = seconds_to_ms(ws_idle);
    if (o.venv.empty()) {
        if (const char* v = std::getenv("VIRTUAL_ENV"); v && *v) o.venv = v;
    }
    if (o.preread_bytes > o.output_hwm) o.preread_bytes = o.output_hwm;
    return o;
}

} // namespace trestle
