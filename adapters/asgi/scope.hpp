#pragma once
// Builds ASGI HTTP connection scopes (asgiref specs/www.rst). Keys are
// interned and the constant sub-dict ("asgi") is built once.
#include "bridge/net/request.hpp"
#include "bridge/python/ref.hpp"

#include <string>

namespace trestle::asgi {

// The ASGI spec version Trestle implements for HTTP ("2.4": send() raises
// OSError once the client is gone).
inline constexpr const char* http_spec_version = "2.4";

class scope_builder {
public:
    // Requires the GIL. `root_path` is the mount prefix ("" at the root).
    explicit scope_builder(std::string root_path = {});

    // `path` is the whole decoded path, root_path included, as the ASGI spec
    // has it; for apps that read it as the part after root_path (Starlette
    // before 0.33), the prefix is stripped instead.
    void set_path_excludes_root(bool v) { strip_root_ = v; }

    // The lifespan state dict; each scope gets a shallow copy.
    void set_state(py::borrowed state) { state_ = state.copy(); }

    // Builds one scope; null with a Python exception set on failure.
    py::ref build(const net::request_head& head, const net::endpoint_info& ep) const;
    // The websocket scope: no method, scheme "ws", and `subprotocols`.
    py::ref build_websocket(const net::request_head& head, const net::endpoint_info& ep) const;

private:
    py::ref common(const net::request_head& head, const net::endpoint_info& ep, bool websocket) const;
    py::ref template_for(bool websocket) const;

    py::ref asgi_;
    py::ref http_extensions_;   // {"http.response.pathsend": {}}
    py::ref ws_extensions_;     // {"websocket.http.response": {}}
    py::ref root_path_;
    std::string root_;   // the decoded mount prefix, as root_path_ holds it
    bool strip_root_ = false;
    py::ref state_;
    // The last server address seen and its (host, port) tuple; only touched
    // on the loop thread, with the GIL.
    mutable py::ref server_;
    mutable py::ref http_template_, ws_template_;
    mutable std::string server_name_, server_port_;
};

} // namespace trestle::asgi
