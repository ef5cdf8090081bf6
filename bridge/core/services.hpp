#pragma once
// What every handler is built from: its mount, and the pieces the server
// shares between mounts. Each adapter has one factory of the same shape,
//   std::unique_ptr<handler> make_handler(const mount_source&, const services&);
// (wsgi::, asgi::, statics::, proxy::), and the worker calls the one the
// mount's kind names.
#include <stdexcept>
#include <string>

namespace trestle {

struct mount_spec;
struct options;
namespace net { struct server_context; }
namespace runtime { class thread_pool; class loop_thread; }
namespace py { class ref; }

struct services {
    const options& opt;
    net::server_context& ctx;
    runtime::thread_pool* pool = nullptr;   // the --threads pool (WSGI requests)
    runtime::loop_thread* loop = nullptr;   // the shared event loop, when one runs
};

struct mount_source {
    const mount_spec& spec;
    const py::ref* app = nullptr;             // the loaded app; null for static files and proxies
    const py::ref* lifespan_state = nullptr;  // ASGI: the state lifespan startup filled; may be null
};

// A mount that cannot be served. `status` is the process's exit status: 2 for
// a configuration the user must change, 1 for an app that failed (with a
// Python exception set, to print).
class mount_error : public std::runtime_error {
public:
    mount_error(int status, const std::string& what) : std::runtime_error(what), status_(status) {}
    int status() const { return status_; }

private:
    int status_;
};

} // namespace trestle
