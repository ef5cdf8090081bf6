// Raw bytes -> the request path: the parser and Trestle's head checks, fed
// in pieces as a socket would deliver them (pipelined requests included),
// then the WSGI environ and the ASGI scope built from every accepted head.
// Checks what the rest of the server relies on: an accepted head never has
// both framings, no CR/LF/NUL reaches a field, the body is exactly what the
// framing says, and the builders never fail with a Python error.
#include "adapters/asgi/scope.hpp"
#include "adapters/wsgi/environ.hpp"
#include "adapters/wsgi/wsgi.hpp"
#include "bridge/net/request_parser.hpp"
#include "bridge/net/request_path.hpp"
#include "bridge/router/mount_table.hpp"
#include "tests/fuzz/common.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

using namespace trestle;

namespace {

std::unique_ptr<wsgi::environ_builder> environs;
std::unique_ptr<asgi::scope_builder> scopes;
net::endpoint_info ep;

void check_head(const net::request_head& h) {
    FUZZ_CHECK(!(h.chunked && h.content_length));
    FUZZ_CHECK(!h.method.empty());
    for (const auto& f : h.headers) {
        FUZZ_CHECK(!f.name.empty());
        for (char c : f.name) FUZZ_CHECK(c > 0x20 && c != ':' && c != 0x7f);
        for (char c : f.value) FUZZ_CHECK(c != '\r' && c != '\n' && c != '\0');
    }
    for (char c : h.target) FUZZ_CHECK(c != ' ' && c != '\r' && c != '\n' && c != '\0');
}

// Stands for the apps: the builders run only for heads the router sends here.
class app_mount final : public handler {
public:
    duties duties_for(const net::request_head&) const override { return {}; }
    bool submit(std::shared_ptr<net::app_port>) override { return true; }
};
app_mount app;
std::unique_ptr<router::mount_table> table;

void build_python_views(net::request_head& h) {
    // The router answers 400 for a path no handler may see (an encoded NUL,
    // a ".." segment) before any builder runs, and splits the prefix off
    // every other path; every head it routes must build both views.
    route r = table->resolve(h);
    if (r.target != &app) {
        std::string decoded;
        FUZZ_CHECK(net::decode_target_path(h, decoded) == 400);
        return;
    }
    py::ref env = environs->build(h, ep, Py_None);
    FUZZ_CHECK(env);
    fuzz::no_python_error("environ_builder::build");
    py::ref scope = h.is_websocket() ? scopes->build_websocket(h, ep) : scopes->build(h, ep);
    FUZZ_CHECK(scope);
    fuzz::no_python_error("scope_builder::build");
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    fuzz::start_python();
    wsgi::init_types();
    table = std::make_unique<router::mount_table>(&app, "fuzz");
    table->add("/m", app);
    environs = std::make_unique<wsgi::environ_builder>("/m");
    scopes = std::make_unique<asgi::scope_builder>("/m");
    ep.remote_addr = ep.peer_addr = "127.0.0.1";
    ep.remote_port = "5000";
    ep.server_name = "127.0.0.1";
    ep.server_port = "8000";
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    // How the bytes arrive from the socket: pieces of a size that varies
    // with the input (a raw request from any corpus works unchanged).
    std::size_t piece = 1 + (size * 37) % 97;
    std::string_view input(reinterpret_cast<const char*>(data), size);
    std::string buf;
    std::size_t fed = 0;

    for (int requests = 0; requests < 8; ++requests) {
        net::request_parser p(4096, 50, 1 << 20);
        bool head_done = false;
        std::string body;
        for (;;) {
            // Empty lines before a request line are skipped, as the session does.
            while (!head_done && buf.size() >= 2 && buf[0] == '\r' && buf[1] == '\n') buf.erase(0, 2);
            boost::system::error_code ec;
            std::size_t n = buf.empty() ? 0 : p.put(boost::asio::buffer(buf), ec);
            if (!ec && !head_done && p.is_header_done()) {
                ec = net::check_raw_head(std::string_view(buf).substr(0, n));
                if (ec) return 0;   // refused: the session answers 4xx and closes
                head_done = true;
                check_head(p.head());
                build_python_views(p.head());
            }
            buf.erase(0, n);
            if (ec && ec != boost::beast::http::error::need_more) {
                FUZZ_CHECK(net::status_for_parse_error(ec) >= 400);
                return 0;
            }
            if (head_done) {
                body += p.body_sink();
                p.body_sink().clear();
                if (p.is_done()) break;
            }
            if (!ec && n > 0) continue;   // progress: parse on
            // An unfinished chunk-size line or trailer is bounded, as the
            // session bounds it (--max-header-bytes): refused.
            if (head_done && buf.size() > 4096) return 0;
            if (fed >= input.size()) return 0;   // the client stopped mid-request
            std::size_t take = std::min(piece, input.size() - fed);
            buf.append(input.substr(fed, take));
            fed += take;
        }
        const net::request_head& h = p.head();
        if (h.content_length) FUZZ_CHECK(body.size() == *h.content_length);
        if (!h.chunked && !h.content_length) FUZZ_CHECK(body.empty());
        if (fed >= input.size() && buf.empty()) return 0;
    }
    return 0;
}
