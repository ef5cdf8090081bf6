#pragma once
// One table of interned strs: the keys and constant values of the WSGI
// environ and the ASGI scope and messages, and the methods Trestle calls.
// Interned once, when the interpreter starts, and kept for the process, so
// the request path reads a pointer: no lookup, no interning, no first-use
// check. Each is borrowed from the table (py::names::type, ...); they are
// plain PyObject* so they pass through Py_BuildValue's variadic arguments.
//
// A name is added here, in one line, and nowhere else.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define TRESTLE_PY_NAMES(X)                                                                    \
    /* the WSGI environ (PEP 3333) */                                                          \
    X(REQUEST_METHOD, "REQUEST_METHOD") X(SCRIPT_NAME, "SCRIPT_NAME") X(PATH_INFO, "PATH_INFO") \
    X(QUERY_STRING, "QUERY_STRING") X(CONTENT_LENGTH, "CONTENT_LENGTH")                         \
    X(SERVER_NAME, "SERVER_NAME") X(SERVER_PORT, "SERVER_PORT")                                 \
    X(SERVER_PROTOCOL, "SERVER_PROTOCOL") X(SERVER_SOFTWARE, "SERVER_SOFTWARE")                 \
    X(REMOTE_ADDR, "REMOTE_ADDR") X(REMOTE_PORT, "REMOTE_PORT") X(REQUEST_URI, "REQUEST_URI")   \
    X(RAW_URI, "RAW_URI") X(HTTPS, "HTTPS") X(on, "on")                                         \
    X(wsgi_version, "wsgi.version") X(wsgi_url_scheme, "wsgi.url_scheme")                       \
    X(wsgi_input, "wsgi.input") X(wsgi_errors, "wsgi.errors")                                   \
    X(wsgi_multithread, "wsgi.multithread") X(wsgi_multiprocess, "wsgi.multiprocess")           \
    X(wsgi_run_once, "wsgi.run_once") X(wsgi_input_terminated, "wsgi.input_terminated")         \
    X(wsgi_file_wrapper, "wsgi.file_wrapper")                                                   \
    X(trestle_async_view, "trestle.async_view") /* set by trestle.flask: counted as flask-async */ \
    X(http10, "HTTP/1.0") X(http11, "HTTP/1.1") X(http2, "HTTP/2") X(empty, "")                                    \
    /* both */                                                                                  \
    X(GET, "GET") X(POST, "POST") X(HEAD, "HEAD") X(http, "http") X(https, "https")              \
    /* the ASGI scope */                                                                        \
    X(type, "type") X(asgi, "asgi") X(http_version, "http_version") X(v10, "1.0") X(v11, "1.1") X(v2, "2") \
    X(method, "method") X(scheme, "scheme") X(path, "path") X(raw_path, "raw_path")             \
    X(query_string, "query_string") X(root_path, "root_path") X(headers, "headers")             \
    X(client, "client") X(server, "server") X(state, "state") X(extensions, "extensions")       \
    X(websocket, "websocket") X(ws, "ws") X(wss, "wss") X(subprotocols, "subprotocols")         \
    /* ASGI messages */                                                                         \
    X(status, "status") X(body, "body") X(more_body, "more_body")                               \
    X(http_request, "http.request") X(http_disconnect, "http.disconnect")                       \
    /* methods Trestle calls, and the name its tasks get */                                    \
    X(done, "done") X(set_result, "set_result") X(set_exception, "set_exception")               \
    X(create_future, "create_future") X(cancelled, "cancelled") X(exception, "exception")       \
    X(get_task_factory, "get_task_factory") X(add_done_callback, "add_done_callback")           \
    X(trestle_asgi, "trestle-asgi")

namespace trestle::py::names {

#define TRESTLE_PY_NAME_DECLARE(id, text) inline PyObject* id = nullptr;
TRESTLE_PY_NAMES(TRESTLE_PY_NAME_DECLARE)
#undef TRESTLE_PY_NAME_DECLARE

// Interns every name; once, with the GIL, right after the interpreter has
// started (py::initialize does it; the units and the fuzz targets, which
// start their own, call it themselves). Later calls do nothing.
void init();

} // namespace trestle::py::names
