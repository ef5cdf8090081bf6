#pragma once
// Builds the PEP 3333 environ dict. Keys are interned once; the constant
// entries live in a prebuilt dict that is copied for each request.
#include "bridge/net/request.hpp"
#include "bridge/python/ref.hpp"

#include <string>
#include <vector>

namespace trestle::wsgi {

// CGI name for a request header: "HTTP_" + upper-case, '-' -> '_'.
// Content-Type and Content-Length map to CONTENT_TYPE and CONTENT_LENGTH.
// Returns an empty string for names that must be dropped (containing '_').
std::string cgi_header_name(std::string_view field_name);

class environ_builder {
public:
    // Requires the GIL. `script_name` is the mount prefix ("" at the root).
    explicit environ_builder(std::string script_name = {});
    ~environ_builder();

    // Builds one environ for a request the router resolved (its path is in
    // head.routed). On a Python error, returns null with the exception set.
    py::ref build(const net::request_head& head, const net::endpoint_info& ep, py::borrowed input) const;

private:
    py::ref header_key(const net::header_field& f) const;   // null: dropped, or an exception

    py::ref base_;
    std::string script_name_;
    mutable std::vector<py::ref> known_keys_;   // by beast field number, filled lazily
};

} // namespace trestle::wsgi
