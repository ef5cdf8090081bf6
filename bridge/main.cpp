// trestle: serve a Python web app.
#include "adapters/wsgi/wsgi_handler.hpp"
#include "bridge/config/options.hpp"
#include "bridge/net/server.hpp"
#include "bridge/observability/access_log.hpp"
#include "bridge/observability/log.hpp"
#include "bridge/python/app_loader.hpp"
#include "bridge/python/interpreter.hpp"
#include "bridge/runtime/thread_pool.hpp"

#include <csignal>
#include <cstdio>
#include <memory>
#include <unistd.h>

using namespace trestle;

int main(int argc, char** argv) {
    options opt = parse_options(argc, argv);
    log::set_level(opt.log_level);
    std::signal(SIGPIPE, SIG_IGN);

    // Bind addresses are checked before Python starts: a typo costs no import.
    for (auto& b : opt.binds) {
        try {
            net::parse_bind(b);
        } catch (const net::bind_error& e) {
            std::fprintf(stderr, "trestle: error: %s\n", e.what());
            return 2;
        }
    }

    std::unique_ptr<access_log> access;
    if (opt.access_log) {
        try {
            access = std::make_unique<access_log>(*opt.access_log);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "trestle: error: %s\n", e.what());
            return 2;
        }
    }

    net::server_context ctx;
    ctx.limits = opt.limits;
    ctx.output_hwm = opt.output_hwm;
    ctx.preread_bytes = opt.preread_bytes;
    ctx.server_header = opt.server_header;
    ctx.retry_after = std::to_string(opt.retry_after);
    ctx.access = access.get();

    py::initialize({opt.chdir, opt.pythonpath, opt.venv});
    py::ref app = py::load_app(opt.app);

    runtime::thread_pool pool(opt.threads, opt.max_queue);
    auto handler = std::make_unique<wsgi::wsgi_handler>(std::move(app), pool, ctx);
    ctx.app = handler.get();

    net::server srv(ctx, opt.io_threads, opt.backlog);
    try {
        srv.listen(opt.binds);
    } catch (const net::bind_error& e) {
        std::fprintf(stderr, "trestle: error: %s\n", e.what());
        return e.usage ? 2 : 1;
    }
    log::info("serving " + opt.app + " (WSGI) with " + std::to_string(opt.threads) + " thread(s), pid " +
              std::to_string(::getpid()));

    py::release_main_thread();
    bool clean = srv.run(opt.graceful_timeout);
    if (access) access->flush();

    // Jobs still queued or running get what is left of the graceful period.
    if (!pool.stop(clean ? 5000 : 0)) {
        log::warning("app threads still busy at shutdown; exiting without finalizing Python");
        std::fflush(stderr);
        ::_exit(0);
    }
    {
        // The handler owns Python references: drop them with the GIL.
        py::gil_ensure gil;
        handler.reset();
    }
    py::finalize();
    log::info("stopped");
    return 0;
}
