#include "adapters/asgi/scope.hpp"
#include "tests/unit/support/routed.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace trestle::asgi {
namespace {

// repr() of scope[key], or "<missing>".
std::string repr(PyObject* scope, const char* key) {
    PyObject* v = PyDict_GetItemString(scope, key);   // borrowed
    if (!v) return "<missing>";
    py::ref r = py::ref::steal(PyObject_Repr(v));
    return r ? PyUnicode_AsUTF8(r.get()) : "<repr failed>";
}

std::vector<std::string> keys(PyObject* scope) {
    std::vector<std::string> out;
    PyObject *k, *v;   // borrowed
    Py_ssize_t pos = 0;
    while (PyDict_Next(scope, &pos, &k, &v)) out.emplace_back(PyUnicode_AsUTF8(k));
    return out;
}

class scope_test : public testing::Test {
protected:
    void SetUp() override {
        ep.remote_addr = "10.1.2.3";
        ep.remote_port = "5555";
        ep.server_name = "127.0.0.1";
        ep.server_port = "8000";
        h.method = "POST";
        h.target = "/v2/caf%C3%A9/a%2Fb?x=%20y&z";
        h.headers = {{"Host", "example"}, {"Content-Type", "text/plain"}, {"X-Dup", "1"}, {"x-dup", "2"}};
    }
    // Routed to a mount at `prefix` first, as the server does.
    py::ref routed_build(scope_builder& b, const std::string& prefix) {
        EXPECT_TRUE(test_support::route_to_mount(h, prefix)) << h.target;
        return b.build(h, ep);
    }
    py::ref routed_build_websocket(scope_builder& b, const std::string& prefix) {
        EXPECT_TRUE(test_support::route_to_mount(h, prefix)) << h.target;
        return b.build_websocket(h, ep);
    }
    net::request_head h;
    net::endpoint_info ep;
};

TEST_F(scope_test, http_scope_has_every_key_of_the_spec_in_order) {
    scope_builder b("/v2");
    py::ref s = routed_build(b, "/v2");
    ASSERT_TRUE(s);
    EXPECT_EQ(keys(s.get()), (std::vector<std::string>{"type", "asgi", "extensions", "http_version", "method",
                                                       "scheme", "path", "raw_path", "query_string", "root_path",
                                                       "headers", "client", "server"}));
    EXPECT_EQ(repr(s.get(), "type"), "'http'");
    EXPECT_EQ(repr(s.get(), "asgi"), "{'version': '3.0', 'spec_version': '2.4'}");
    EXPECT_EQ(repr(s.get(), "extensions"),
              "{'http.response.pathsend': {}, 'http.response.trailers': {}, 'http.response.informational': {}}");
    EXPECT_EQ(repr(s.get(), "http_version"), "'1.1'");
    EXPECT_EQ(repr(s.get(), "method"), "'POST'");
    EXPECT_EQ(repr(s.get(), "scheme"), "'http'");
    // path: the whole path, root_path included (as the ASGI spec has it),
    // percent-decoded as UTF-8 (%2F too); raw_path: the path as sent.
    EXPECT_EQ(repr(s.get(), "path"), "'/v2/café/a/b'");
    EXPECT_EQ(repr(s.get(), "raw_path"), "b'/v2/caf%C3%A9/a%2Fb'");
    EXPECT_EQ(repr(s.get(), "query_string"), "b'x=%20y&z'");
    EXPECT_EQ(repr(s.get(), "root_path"), "'/v2'");
    EXPECT_EQ(repr(s.get(), "headers"),
              "[(b'host', b'example'), (b'content-type', b'text/plain'), (b'x-dup', b'1'), (b'x-dup', b'2')]");
    EXPECT_EQ(repr(s.get(), "client"), "('10.1.2.3', 5555)");
    EXPECT_EQ(repr(s.get(), "server"), "('127.0.0.1', 8000)");
}

TEST_F(scope_test, the_prefix_is_stripped_from_path_for_apps_that_want_it) {
    scope_builder b("/v2");
    b.set_path_excludes_root(true);   // Starlette before 0.33
    py::ref s = routed_build(b, "/v2");
    ASSERT_TRUE(s);
    EXPECT_EQ(repr(s.get(), "path"), "'/café/a/b'");
    EXPECT_EQ(repr(s.get(), "raw_path"), "b'/v2/caf%C3%A9/a%2Fb'");
    EXPECT_EQ(repr(s.get(), "root_path"), "'/v2'");
}

// Issue 10 item 15: the path is the one the router split.
TEST_F(scope_test, an_encoded_prefix_is_stripped_as_the_decoded_one) {
    scope_builder b("/v2");
    h.target = "/%76%32/x%2Fy";
    py::ref s = routed_build(b, "/v2");
    ASSERT_TRUE(s);
    EXPECT_EQ(repr(s.get(), "path"), "'/v2/x/y'");
    EXPECT_EQ(repr(s.get(), "raw_path"), "b'/%76%32/x%2Fy'");
    b.set_path_excludes_root(true);
    h.target = "//v2//x";
    s = routed_build(b, "/v2");
    ASSERT_TRUE(s);
    EXPECT_EQ(repr(s.get(), "path"), "'//x'");
    scope_builder decoded("/my app");
    h.target = "/my%20app/x";
    s = routed_build(decoded, "/my app");
    ASSERT_TRUE(s);
    EXPECT_EQ(repr(s.get(), "root_path"), "'/my app'");
    EXPECT_EQ(repr(s.get(), "path"), "'/my app/x'");
}

TEST_F(scope_test, every_scope_is_a_fresh_dict_and_the_template_is_untouched) {
    scope_builder b;
    py::ref first = routed_build(b, "");
    ASSERT_TRUE(first);
    ASSERT_EQ(PyDict_SetItemString(first.get(), "path", Py_None), 0);   // an app that writes to its scope
    h.method = "PATCH";   // not one of the cached method strs
    h.version = 10;
    ep.remote_port = "6000";
    py::ref second = routed_build(b, "");
    ASSERT_TRUE(second);
    EXPECT_NE(first.get(), second.get());
    EXPECT_EQ(repr(second.get(), "path"), "'/v2/café/a/b'");
    EXPECT_EQ(repr(second.get(), "root_path"), "''");
    EXPECT_EQ(repr(second.get(), "method"), "'PATCH'");
    EXPECT_EQ(repr(second.get(), "http_version"), "'1.0'");
    EXPECT_EQ(repr(second.get(), "client"), "('10.1.2.3', 6000)");
}

TEST_F(scope_test, the_server_tuple_follows_the_listener_address) {
    scope_builder b;
    py::ref a = routed_build(b, "");
    py::ref again = routed_build(b, "");
    ASSERT_TRUE(a && again);
    // Shared (immutable) while the listener address is the same...
    EXPECT_EQ(PyDict_GetItemString(a.get(), "server"), PyDict_GetItemString(again.get(), "server"));
    ep.server_name = "::1";
    ep.server_port = "9000";
    py::ref other = routed_build(b, "");
    ASSERT_TRUE(other);
    // ...and rebuilt when a request comes through another one.
    EXPECT_EQ(repr(other.get(), "server"), "('::1', 9000)");
    EXPECT_EQ(repr(a.get(), "server"), "('127.0.0.1', 8000)");
}

TEST_F(scope_test, unix_socket_peers_have_no_client_or_server) {
    scope_builder b;
    ep = {};
    ep.is_unix = true;
    py::ref s = routed_build(b, "");
    ASSERT_TRUE(s);
    EXPECT_EQ(repr(s.get(), "client"), "None");
    EXPECT_EQ(repr(s.get(), "server"), "None");
}

TEST_F(scope_test, state_is_a_shallow_copy_per_request) {
    scope_builder b;
    py::ref inner = py::ref::steal(PyList_New(0));
    py::ref state = py::ref::steal(PyDict_New());
    ASSERT_EQ(PyDict_SetItemString(state.get(), "pool", inner.get()), 0);
    b.set_state(state.get());
    py::ref s1 = routed_build(b, "");
    py::ref s2 = routed_build(b, "");
    ASSERT_TRUE(s1 && s2);
    PyObject* st1 = PyDict_GetItemString(s1.get(), "state");   // borrowed
    PyObject* st2 = PyDict_GetItemString(s2.get(), "state");   // borrowed
    ASSERT_TRUE(st1 && st2);
    EXPECT_NE(st1, state.get());
    EXPECT_NE(st1, st2);
    // The values themselves are shared.
    EXPECT_EQ(PyDict_GetItemString(st1, "pool"), inner.get());
    ASSERT_EQ(PyDict_SetItemString(st1, "added", Py_True), 0);
    EXPECT_EQ(PyDict_GetItemString(state.get(), "added"), nullptr);
}

TEST_F(scope_test, websocket_scope_has_subprotocols_and_no_method) {
    scope_builder b;
    h.method = "GET";
    h.target = "/chat?room=1";
    h.headers = {{"Host", "x"}, {"Sec-WebSocket-Protocol", "chat, superchat"},
                 {"sec-websocket-protocol", "v3"}};
    py::ref s = routed_build_websocket(b, "");
    ASSERT_TRUE(s);
    EXPECT_EQ(repr(s.get(), "type"), "'websocket'");
    EXPECT_EQ(repr(s.get(), "scheme"), "'ws'");
    EXPECT_EQ(repr(s.get(), "method"), "<missing>");
    EXPECT_EQ(repr(s.get(), "extensions"), "{'websocket.http.response': {}}");
    EXPECT_EQ(repr(s.get(), "subprotocols"), "['chat', 'superchat', 'v3']");
    EXPECT_EQ(repr(s.get(), "path"), "'/chat'");
    EXPECT_EQ(repr(s.get(), "query_string"), "b'room=1'");
    // An http scope built after it is still an http scope.
    py::ref http = routed_build(b, "");
    ASSERT_TRUE(http);
    EXPECT_EQ(repr(http.get(), "type"), "'http'");
    EXPECT_EQ(repr(http.get(), "method"), "'GET'");
}

} // namespace
} // namespace trestle::asgi
