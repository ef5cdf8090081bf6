#include "adapters/wsgi/environ.hpp"
#include "adapters/wsgi/wsgi.hpp"
#include "tests/unit/support/routed.hpp"

#include <gtest/gtest.h>

namespace trestle::wsgi {
namespace {

using net::request_head;

std::string str(PyObject* env, const char* key) {
    PyObject* v = PyDict_GetItemString(env, key);   // borrowed
    if (!v) return "<missing>";
    Py_ssize_t n;
    const char* s = PyUnicode_AsUTF8AndSize(v, &n);
    return s ? std::string(s, static_cast<std::size_t>(n)) : "<not str>";
}

class environ_test : public testing::Test {
protected:
    void SetUp() override {
        init_types();
        builder = std::make_unique<environ_builder>("/mount");
        ep.remote_addr = "10.1.2.3";
        ep.remote_port = "5555";
        ep.server_name = "127.0.0.1";
        ep.server_port = "8000";
        h.method = "POST";
        h.target = "/mount/a%20b/c%2Fd?x=%20y";   // the mount table matched "/mount"
        h.headers = {{"Host", "example"}, {"Content-Type", "text/plain"}, {"Content-Length", "3"},
                     {"X-Forwarded-For", "1.1.1.1"}, {"X_Forwarded_For", "6.6.6.6"},
                     {"Accept", "a"}, {"accept", "b"}, {"Cookie", "a=1"}, {"Cookie", "b=2"}};
        h.content_length = 3;
        input = py::ref::borrow(Py_None);
    }
    // Routed to the mount "/mount" first, as the server does.
    py::ref build() { return build_with(*builder, "/mount"); }
    py::ref build_with(environ_builder& b, const std::string& prefix) {
        EXPECT_TRUE(test_support::route_to_mount(h, prefix)) << h.target;
        return b.build(h, ep, input.get());
    }
    std::unique_ptr<environ_builder> builder;
    request_head h;
    net::endpoint_info ep;
    py::ref input;
};

TEST_F(environ_test, has_cgi_keys) {
    auto env = build();
    ASSERT_TRUE(env);
    PyObject* e = env.get();
    EXPECT_EQ(str(e, "REQUEST_METHOD"), "POST");
    EXPECT_EQ(str(e, "SCRIPT_NAME"), "/mount");
    EXPECT_EQ(str(e, "PATH_INFO"), "/a b/c/d");
    EXPECT_EQ(str(e, "QUERY_STRING"), "x=%20y");
    EXPECT_EQ(str(e, "CONTENT_TYPE"), "text/plain");
    EXPECT_EQ(str(e, "CONTENT_LENGTH"), "3");
    EXPECT_EQ(str(e, "SERVER_NAME"), "127.0.0.1");
    EXPECT_EQ(str(e, "SERVER_PORT"), "8000");
    EXPECT_EQ(str(e, "SERVER_PROTOCOL"), "HTTP/1.1");
    EXPECT_EQ(str(e, "REMOTE_ADDR"), "10.1.2.3");
    EXPECT_EQ(str(e, "REMOTE_PORT"), "5555");
    EXPECT_EQ(str(e, "HTTP_HOST"), "example");
    EXPECT_EQ(str(e, "wsgi.url_scheme"), "http");
    EXPECT_EQ(PyDict_GetItemString(e, "HTTP_CONTENT_TYPE"), nullptr);
    EXPECT_EQ(PyDict_GetItemString(e, "wsgi.input_terminated"), Py_True);
    EXPECT_NE(PyDict_GetItemString(e, "wsgi.file_wrapper"), nullptr);
    EXPECT_NE(PyDict_GetItemString(e, "wsgi.errors"), nullptr);
}

TEST_F(environ_test, drops_underscore_names_and_joins_repeats) {
    auto env = build();
    ASSERT_TRUE(env);
    EXPECT_EQ(str(env.get(), "HTTP_X_FORWARDED_FOR"), "1.1.1.1");
    EXPECT_EQ(str(env.get(), "HTTP_ACCEPT"), "a, b");
    EXPECT_EQ(str(env.get(), "HTTP_COOKIE"), "a=1; b=2");
}

TEST_F(environ_test, absent_content_headers_are_absent) {
    h.headers = {{"Host", "x"}};
    h.content_length.reset();
    auto env = build();
    ASSERT_TRUE(env);
    EXPECT_EQ(PyDict_GetItemString(env.get(), "CONTENT_TYPE"), nullptr);
    EXPECT_EQ(PyDict_GetItemString(env.get(), "CONTENT_LENGTH"), nullptr);
}

TEST_F(environ_test, path_is_latin1_of_the_raw_bytes) {
    h.target = "/mount/caf%C3%A9";
    auto env = build();
    ASSERT_TRUE(env);
    PyObject* p = PyDict_GetItemString(env.get(), "PATH_INFO");
    ASSERT_TRUE(p);
    EXPECT_EQ(PyUnicode_GET_LENGTH(p), 6);
    EXPECT_EQ(PyUnicode_READ_CHAR(p, 4), 0xC3u);
}

// Issue 10 item 15: SCRIPT_NAME is the decoded prefix the mount table
// matched on the decoded path; PATH_INFO is what follows it.
TEST_F(environ_test, an_encoded_prefix_is_stripped_as_the_decoded_one) {
    h.target = "/%6dount/x%2Fy";
    auto env = build();
    ASSERT_TRUE(env);
    EXPECT_EQ(str(env.get(), "SCRIPT_NAME"), "/mount");
    EXPECT_EQ(str(env.get(), "PATH_INFO"), "/x/y");
    EXPECT_EQ(str(env.get(), "RAW_URI"), "/%6dount/x%2Fy");
    h.target = "/./mount//x";
    env = build();
    ASSERT_TRUE(env);
    EXPECT_EQ(str(env.get(), "PATH_INFO"), "//x");
    environ_builder spaced("/my app");
    h.target = "/my%20app/x";
    env = build_with(spaced, "/my app");
    ASSERT_TRUE(env);
    EXPECT_EQ(str(env.get(), "SCRIPT_NAME"), "/my app");
    EXPECT_EQ(str(env.get(), "PATH_INFO"), "/x");
}

TEST_F(environ_test, repeated_content_length_becomes_one_number) {
    h.headers = {{"Host", "x"}, {"Content-Length", "5, 5"}, {"Content-Length", "5"}};
    h.content_length = 5;
    auto env = build();
    ASSERT_TRUE(env);
    EXPECT_EQ(str(env.get(), "CONTENT_LENGTH"), "5");
}

TEST(cgi_header_name, maps_names) {
    EXPECT_EQ(cgi_header_name("User-Agent"), "HTTP_USER_AGENT");
    EXPECT_EQ(cgi_header_name("content-type"), "CONTENT_TYPE");
    EXPECT_EQ(cgi_header_name("X_Bad"), "");
}

} // namespace
} // namespace trestle::wsgi
