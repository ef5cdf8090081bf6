// What a WSGI app may hand back -> the bytes Trestle puts on the wire. The
// input drives a Python app: its status string, header list (with wrong
// types and injected CR/LF/NUL), body chunks (bytes, str, None, ints), how
// it calls start_response (never, twice, with exc_info, write()), whether it
// returns a list, a generator that raises, None, or an object with close().
// The real handler runs it (wsgi_handler::run); the output must then parse
// as exactly one HTTP/1.1 response (complete if the connection is kept),
// never two, and close() must have been called exactly once.
#include "adapters/wsgi/wsgi.hpp"
#include "adapters/wsgi/wsgi_handler.hpp"
#include "bridge/net/wake_queue.hpp"
#include "bridge/net/exchange.hpp"
#include "bridge/net/server_context.hpp"
#include "bridge/observability/log.hpp"
#include "bridge/runtime/thread_pool.hpp"
#include "tests/fuzz/common.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <memory>

using namespace trestle;
namespace http = boost::beast::http;

namespace {

const char* app_source = R"PY(
import sys

CASE = None
CLOSED = []
RETURNED = []

class Body:
    def __init__(self, chunks, raise_at):
        self.chunks, self.raise_at = chunks, raise_at
    def __iter__(self):
        for i, c in enumerate(self.chunks):
            if i == self.raise_at:
                raise ValueError("fuzz: raised in the iterator")
            yield c
    def close(self):
        CLOSED.append(1)

def app(environ, start_response):
    status, headers, chunks, how, raise_at = CASE
    if how & 1:
        write = start_response(status, headers)
        if how & 2:
            start_response(status, headers)               # twice, no exc_info: must raise
        if how & 4:
            try:
                raise KeyError("fuzz")
            except KeyError:
                start_response("500 Oops", [("Content-Type", "text/plain")], sys.exc_info())
        if how & 8 and chunks:
            write(chunks[0])
    if how & 16:
        return None
    if how & 32:
        body = Body(chunks, raise_at)
        RETURNED.append(1)
        return body
    return list(chunks)
)PY";

py::ref module_dict;
py::ref app;
// Made once and never destroyed: the pool's thread waits for the GIL, which
// this thread keeps, so joining it at exit would hang.
boost::asio::io_context* ioc;
net::wake_queue* wakes;   // on ioc, which nothing runs: the exchange is drained by take()
runtime::thread_pool* pool;
net::server_context* ctx;
wsgi::wsgi_handler* wsgi_app;

// Pulls fuzz bytes off the front of the input.
struct reader {
    const std::uint8_t* p;
    std::size_t n;
    std::uint8_t byte() {
        if (!n) return 0;
        --n;
        return *p++;
    }
    std::string bytes(std::size_t max) {
        std::size_t len = std::min<std::size_t>(byte() % (max + 1), n);
        std::string s(reinterpret_cast<const char*>(p), len);
        p += len;
        n -= len;
        return s;
    }
};

// A str (latin-1 of the bytes), the bytes themselves, an int or None.
PyObject* value(reader& r, std::size_t max) {
    std::uint8_t kind = r.byte() % 8;
    std::string s = r.bytes(max);
    if (kind == 5) return PyBytes_FromStringAndSize(s.data(), static_cast<Py_ssize_t>(s.size()));
    if (kind == 6) return PyLong_FromLong(static_cast<long>(s.size()));
    if (kind == 7) Py_RETURN_NONE;
    return PyUnicode_DecodeLatin1(s.data(), static_cast<Py_ssize_t>(s.size()), nullptr);
}

py::ref make_case(reader& r) {
    py::ref status = py::ref::steal(r.byte() % 4 ? PyUnicode_FromFormat("%d %s", 100 + r.byte() * 2 % 500, "OK")
                                                 : value(r, 24));
    std::size_t nh = r.byte() % 6;
    py::ref headers = py::ref::steal(PyList_New(0));
    for (std::size_t i = 0; i < nh; ++i) {
        py::ref name = py::ref::steal(r.byte() % 3 ? PyUnicode_FromString(r.byte() % 2 ? "Content-Length" : "X-F")
                                                   : value(r, 16));
        py::ref val = py::ref::steal(value(r, 24));
        py::ref pair = py::ref::steal(r.byte() % 8 ? PyTuple_Pack(2, name.get(), val.get()) : PyList_New(0));
        PyList_Append(headers.get(), pair.get());
    }
    std::size_t nc = r.byte() % 4;
    py::ref chunks = py::ref::steal(PyList_New(0));
    for (std::size_t i = 0; i < nc; ++i) {
        py::ref c = py::ref::steal(r.byte() % 4 ? PyBytes_FromStringAndSize(nullptr, 0) : value(r, 32));
        if (PyBytes_Check(c.get()) && PyBytes_GET_SIZE(c.get()) == 0) {
            std::string b = r.bytes(64);
            c = py::ref::steal(PyBytes_FromStringAndSize(b.data(), static_cast<Py_ssize_t>(b.size())));
        }
        PyList_Append(chunks.get(), c.get());
    }
    int how = r.byte();
    int raise_at = r.byte() % 6;
    return py::ref::steal(Py_BuildValue("(OOOii)", status.get(), headers.get(), chunks.get(), how, raise_at));
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    fuzz::start_python();
    log::set_level("error");
    wsgi::init_types();
    module_dict = py::ref::steal(PyDict_New());
    PyDict_SetItemString(module_dict.get(), "__builtins__", PyEval_GetBuiltins());
    py::ref r = py::ref::steal(PyRun_String(app_source, Py_file_input, module_dict.get(), module_dict.get()));
    FUZZ_CHECK(r);
    app = py::ref::borrow(PyDict_GetItemString(module_dict.get(), "app"));
    ioc = new boost::asio::io_context;
    wakes = new net::wake_queue(ioc->get_executor());
    pool = new runtime::thread_pool(1, 16);
    ctx = new net::server_context;
    wsgi_app = new wsgi::wsgi_handler(app.copy(), *pool, *ctx, "");
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    reader r{data, size};
    py::ref c = make_case(r);
    FUZZ_CHECK(c);
    PyDict_SetItemString(module_dict.get(), "CASE", c.get());
    PyObject* closed = PyDict_GetItemString(module_dict.get(), "CLOSED");       // borrowed
    PyObject* returned = PyDict_GetItemString(module_dict.get(), "RETURNED");   // borrowed
    PyList_SetSlice(closed, 0, PyList_GET_SIZE(closed), nullptr);
    PyList_SetSlice(returned, 0, PyList_GET_SIZE(returned), nullptr);

    net::request_head head;
    head.method = "GET";
    head.target = "/";
    head.headers = {{"Host", "x", 0}};
    head.routed.decoded = "/";   // as the router leaves it at the root
    net::endpoint_info ep;
    auto ex = std::make_shared<net::exchange>(*wakes, head, ep, 1u << 30);
    ex->preload_body({});
    wsgi_app->run(*ex);
    fuzz::no_python_error("wsgi_handler::run");

    net::io_work w;
    std::string out;
    bool done = false, keep = false;
    while (ex->take(w)) {
        out += w.out;
        w.out.clear();
        if (w.file) ex->file_sent(true);
        if (w.done) {
            done = true;
            keep = w.keep_alive;
            break;
        }
        ex->output_written();
    }
    FUZZ_CHECK(done);   // run() always ends the exchange
    FUZZ_CHECK(PyList_GET_SIZE(closed) == PyList_GET_SIZE(returned));   // close() once, always

    // The bytes must be one response: the head always parses; a kept
    // connection means a complete body and nothing after it.
    http::response_parser<http::string_body> p;
    p.eager(true);
    p.body_limit(out.size());   // more than was sent is only allowed on a closed connection
    boost::system::error_code ec;
    std::size_t used = 0;
    while (used < out.size() && !p.is_done()) {
        std::size_t n = p.put(boost::asio::buffer(out.data() + used, out.size() - used), ec);
        used += n;
        if (ec || n == 0) break;
    }
    if (std::getenv("FUZZ_SHOW")) std::fprintf(stderr, "keep=%d parse=%s output:\n%s\n", keep, ec.message().c_str(), out.c_str());
    if (!p.is_header_done()) {
        // Either nothing at all (the client sees the connection close) or a full head.
        FUZZ_CHECK(!keep);
        FUZZ_CHECK(out.empty());
        return 0;
    }
    if (ec == http::error::body_limit) {
        FUZZ_CHECK(!keep);   // a declared length the body fell short of: closed
        return 0;
    }
    FUZZ_CHECK(!ec || ec == http::error::need_more);
    // A kept connection: the response is complete, and nothing follows it.
    if (keep) FUZZ_CHECK(p.is_done() && used == out.size());
    return 0;
}
