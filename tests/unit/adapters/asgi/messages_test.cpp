#include "adapters/asgi/messages.hpp"

#include <gtest/gtest.h>

#include <string>

namespace trestle::asgi {
namespace {

// Evaluates a Python expression (builtins only) into a new reference.
py::ref eval(const char* expr) {
    py::ref globals = py::ref::steal(PyDict_New());
    PyDict_SetItemString(globals.get(), "__builtins__", PyEval_GetBuiltins());
    return py::ref::steal(PyRun_String(expr, Py_eval_input, globals.get(), globals.get()));
}

// The pending Python exception as "TypeName: message", cleared; "" if none.
std::string take_error() {
    if (!PyErr_Occurred()) return "";
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    py::ref t = py::ref::steal(type), v = py::ref::steal(value), b = py::ref::steal(tb);
    py::ref s = py::ref::steal(PyObject_Str(v.get()));
    return std::string(reinterpret_cast<PyTypeObject*>(t.get())->tp_name) + ": " + PyUnicode_AsUTF8(s.get());
}

std::optional<response_start> start(const char* expr) {
    py::ref m = eval(expr);
    EXPECT_TRUE(m) << expr;
    if (!m) {
        PyErr_Clear();
        return std::nullopt;
    }
    return parse_response_start(m.get());
}

TEST(asgi_messages, message_type_needs_a_dict_with_a_str_type) {
    py::ref ok = eval("{'type': 'http.response.start'}");
    EXPECT_EQ(message_type(ok.get()), "http.response.start");
    EXPECT_EQ(take_error(), "");
    py::ref not_dict = eval("[('type', 'x')]");
    EXPECT_EQ(message_type(not_dict.get()), "");
    EXPECT_EQ(take_error(), "TypeError: ASGI messages must be dicts, not list");
    py::ref no_type = eval("{'status': 200}");
    EXPECT_EQ(message_type(no_type.get()), "");
    EXPECT_EQ(take_error(), "TypeError: ASGI message has no 'type' str");
    py::ref bytes_type = eval("{'type': b'http.response.body'}");
    EXPECT_EQ(message_type(bytes_type.get()), "");
    EXPECT_EQ(take_error(), "TypeError: ASGI message has no 'type' str");
}

TEST(asgi_messages, a_start_serializes_headers_in_order) {
    auto r = start("{'type': 'http.response.start', 'status': 201, 'headers': ["
                   "(b'content-type', b'text/plain'), [b'X-Multi', b'1'], (b'x-multi', bytearray(b'2')),"
                   "(memoryview(b'set-cookie'), b'a=1; Path=/')]}");
    ASSERT_TRUE(r) << take_error();
    EXPECT_EQ(r->status, 201u);
    EXPECT_EQ(r->fields, "content-type: text/plain\r\nX-Multi: 1\r\nx-multi: 2\r\nset-cookie: a=1; Path=/\r\n");
    EXPECT_FALSE(r->declared);
    EXPECT_FALSE(r->close);
}

TEST(asgi_messages, headers_may_be_missing_or_any_iterable) {
    auto none = start("{'type': 'http.response.start', 'status': 204}");
    ASSERT_TRUE(none);
    EXPECT_EQ(none->fields, "");
    auto gen = start("{'type': 'http.response.start', 'status': 200,"
                     " 'headers': (p for p in [(b'a', b'1'), (b'b', b'2')])}");
    ASSERT_TRUE(gen) << take_error();
    EXPECT_EQ(gen->fields, "a: 1\r\nb: 2\r\n");
}

TEST(asgi_messages, content_length_is_taken_out_and_hop_by_hop_fields_dropped) {
    auto r = start("{'type': 'http.response.start', 'status': 200, 'headers': ["
                   "(b'Content-Length', b'12'), (b'transfer-encoding', b'chunked'), (b'keep-alive', b'5'),"
                   "(b'connection', b'keep-alive, close'), (b'x-kept', b'yes')]}");
    ASSERT_TRUE(r) << take_error();
    EXPECT_EQ(r->declared, 12u);
    EXPECT_TRUE(r->close);
    EXPECT_EQ(r->fields, "x-kept: yes\r\n");
}

TEST(asgi_messages, bad_starts_raise_the_right_python_error) {
    struct bad_case {
        const char* message;
        const char* error;
    } cases[] = {
        {"{'type': 'http.response.start'}", "TypeError: http.response.start needs an int 'status'"},
        {"{'type': 'http.response.start', 'status': '200'}", "TypeError: http.response.start needs an int 'status'"},
        {"{'type': 'http.response.start', 'status': 99}", "ValueError: invalid HTTP status 99: a response's status is 200 to 599"},
        {"{'type': 'http.response.start', 'status': 1000}", "ValueError: invalid HTTP status 1000: a response's status is 200 to 599"},
        // an interim status as the final one would desynchronise the client (found by fuzz_wsgi_response)
        {"{'type': 'http.response.start', 'status': 101}", "ValueError: invalid HTTP status 101: a response's status is 200 to 599"},
        {"{'type': 'http.response.start', 'status': 199}", "ValueError: invalid HTTP status 199: a response's status is 200 to 599"},
        {"{'type': 'http.response.start', 'status': 600}", "ValueError: invalid HTTP status 600: a response's status is 200 to 599"},
        {"{'type': 'http.response.start', 'status': 2**80}", "OverflowError: Python int too large to convert to C long"},
        {"{'type': 'http.response.start', 'status': 200, 'headers': 5}",
         "TypeError: 'headers' must be an iterable of [name, value] pairs"},
        {"{'type': 'http.response.start', 'status': 200, 'headers': [b'abc']}",
         "ValueError: each header must be a [name, value] pair"},
        // bytes of length 2 are a sequence of two ints: rejected all the same
        {"{'type': 'http.response.start', 'status': 200, 'headers': [b'ab']}",
         "TypeError: a bytes-like object is required, not 'int'"},
        {"{'type': 'http.response.start', 'status': 200, 'headers': [(b'a', b'1', b'2')]}",
         "ValueError: each header must be a [name, value] pair"},
        {"{'type': 'http.response.start', 'status': 200, 'headers': [7]}",
         "TypeError: each header must be a [name, value] pair"},
        {"{'type': 'http.response.start', 'status': 200, 'headers': [('x', b'1')]}",
         "TypeError: a bytes-like object is required, not 'str'"},
        {"{'type': 'http.response.start', 'status': 200, 'headers': [(b'x', 1)]}",
         "TypeError: a bytes-like object is required, not 'int'"},
        {"{'type': 'http.response.start', 'status': 200, 'headers': [(b'bad name', b'1')]}",
         "ValueError: invalid response header (b'bad name', b'1')"},
        {"{'type': 'http.response.start', 'status': 200, 'headers': [(b'', b'1')]}",
         "ValueError: invalid response header (b'', b'1')"},
        {"{'type': 'http.response.start', 'status': 200, 'headers': [(b'x', b'a\\r\\nInjected: 1')]}",
         "ValueError: invalid response header (b'x', b'a\\r\\nInjected: 1')"},
        {"{'type': 'http.response.start', 'status': 200, 'headers': [(b'x', b'a\\x00b')]}",
         "ValueError: invalid response header (b'x', b'a\\x00b')"},
        {"{'type': 'http.response.start', 'status': 200, 'headers': [(b'content-length', b'-1')]}",
         "ValueError: invalid Content-Length (b'content-length', b'-1')"},
        {"{'type': 'http.response.start', 'status': 200, 'headers': [(b'content-length', b'')]}",
         "ValueError: invalid Content-Length (b'content-length', b'')"},
        {"{'type': 'http.response.start', 'status': 200, 'headers': [(b'content-length', b'99999999999999999999')]}",
         "ValueError: invalid Content-Length (b'content-length', b'99999999999999999999')"},
    };
    for (const auto& c : cases) {
        EXPECT_FALSE(start(c.message)) << c.message;
        EXPECT_EQ(take_error(), c.error) << c.message;
    }
}

TEST(asgi_messages, order_errors_name_the_expected_message) {
    EXPECT_FALSE(order_error(send_state::start, "http.response.start"));
    EXPECT_EQ(order_error(send_state::start, "http.response.body"),
              "Expected ASGI message 'http.response.start', but got 'http.response.body'.");
    EXPECT_FALSE(order_error(send_state::body, "http.response.body"));
    EXPECT_FALSE(order_error(send_state::body, "http.response.pathsend"));
    EXPECT_EQ(order_error(send_state::body, "http.response.start"),
              "Expected ASGI message 'http.response.body', but got 'http.response.start'.");
    EXPECT_EQ(order_error(send_state::body, "websocket.send"),
              "Expected ASGI message 'http.response.body', but got 'websocket.send'.");
    EXPECT_EQ(order_error(send_state::done, "http.response.body"),
              "Unexpected ASGI message 'http.response.body' sent, after response already completed.");
}

} // namespace
} // namespace trestle::asgi
