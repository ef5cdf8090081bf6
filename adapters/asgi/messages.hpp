#pragma once
// Reading the messages an ASGI app sends (asgiref specs/www.rst), apart from
// any connection, so the rules can be tested on their own. All of it needs
// the GIL.
#include "bridge/python/ref.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace trestle::asgi {

// message["type"] as UTF-8 (a view of the str's cached UTF-8, valid while the
// message lives), or empty with a TypeError set.
std::string_view message_type(PyObject* message);

// A bytes-like value as a view that lives as long as `buf` is not released:
// bytes are read in place (buf.obj stays null), other buffer providers go
// through the buffer protocol. False with a Python exception set.
bool bytes_view(PyObject* o, Py_buffer& buf, std::string_view& out);
// Releases what bytes_view took, if anything.
void release_view(Py_buffer& buf);

// message["status"] of a final response: an int from 200 to 599. nullopt with
// TypeError, ValueError or OverflowError set otherwise. `what` names the
// message in the error.
std::optional<unsigned> parse_status(PyObject* message, const char* what);

// Calls on_field(name, value, item) for each pair of an ASGI `headers` value
// (null or None: none): an iterable of [name, value] pairs of bytes-like
// objects, names RFC 9110 tokens, values without CR, LF or NUL. The views
// live for the call only. False with a Python exception set when a pair
// breaks a rule or on_field returns false (it sets the exception).
bool for_each_header(PyObject* headers,
                     const std::function<bool(std::string_view, std::string_view, PyObject*)>& on_field);

// An http.response.start, checked and serialized.
struct response_start {
    unsigned status = 0;
    std::string fields;                    // "Name: value\r\n" each, in order
    std::optional<std::uint64_t> declared; // the app's Content-Length
    bool close = false;                    // the app sent Connection: close
    bool trailers = false;                 // http.response.trailers will follow the body
};

// Reads message["status"] and message["headers"] (see parse_status and
// for_each_header). A
// Content-Length is taken out into `declared`; hop-by-hop fields are dropped
// (Connection: close is kept as `close`). nullopt with a Python exception
// (TypeError or ValueError) set when the message breaks a rule.
std::optional<response_start> parse_response_start(PyObject* message);

// The order of the messages of one HTTP response: an interim response
// (http.response.informational) may come before the start; trailers
// (http.response.trailers) after the last body, when the start said so.
enum class send_state { start, body, trailers, done };

// http.response.informational: a 1xx status other than 101, and its
// headers as "Name: value\r\n" lines. nullopt with a Python exception set
// when the message breaks a rule.
std::optional<std::pair<unsigned, std::string>> parse_informational(PyObject* message);

// http.response.trailers: appends its fields to `fields` ("Name: value\r\n"
// lines; fields that frame a message are dropped) and sets `more` from
// more_trailers. False with a Python exception set on a bad message.
bool parse_trailers(PyObject* message, std::string& fields, bool& more);

// Null if `type` may be sent in `state`, otherwise the RuntimeError text
// the app gets (it names the message that was expected).
std::optional<std::string> order_error(send_state state, std::string_view type);

} // namespace trestle::asgi
