#include "adapters/asgi/messages.hpp"

#include "bridge/net/http_util.hpp"
#include "bridge/python/names.hpp"

#include <boost/beast/core/string.hpp>

#include <charconv>
#include <functional>

namespace trestle::asgi {

namespace {

namespace names = py::names;

} // namespace

bool bytes_view(PyObject* o, Py_buffer& buf, std::string_view& out) {
    if (PyBytes_CheckExact(o)) {
        buf.obj = nullptr;
        out = {PyBytes_AS_STRING(o), static_cast<std::size_t>(PyBytes_GET_SIZE(o))};
        return true;
    }
    if (PyObject_GetBuffer(o, &buf, PyBUF_SIMPLE) < 0) return false;
    out = {static_cast<const char*>(buf.buf), static_cast<std::size_t>(buf.len)};
    return true;
}

void release_view(Py_buffer& buf) {
    if (buf.obj) PyBuffer_Release(&buf);
}

std::string_view message_type(PyObject* message) {
    if (!PyDict_Check(message)) {
        PyErr_Format(PyExc_TypeError, "ASGI messages must be dicts, not %.100s", Py_TYPE(message)->tp_name);
        return {};
    }
    PyObject* t = PyDict_GetItemWithError(message, names::type);   // borrowed
    if (!t || !PyUnicode_Check(t)) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "ASGI message has no 'type' str");
        return {};
    }
    Py_ssize_t n = 0;
    const char* s = PyUnicode_AsUTF8AndSize(t, &n);
    return s ? std::string_view(s, static_cast<std::size_t>(n)) : std::string_view{};
}

std::optional<unsigned> parse_status(PyObject* message, const char* what) {
    PyObject* st = PyDict_GetItemWithError(message, names::status);   // borrowed
    if (!st || !PyLong_Check(st)) {
        if (!PyErr_Occurred()) PyErr_Format(PyExc_TypeError, "%s needs an int 'status'", what);
        return std::nullopt;
    }
    long code = PyLong_AsLong(st);   // OverflowError for an int past long
    if (code == -1 && PyErr_Occurred()) return std::nullopt;
    // 1xx are interim responses, never the final one (a client would wait for
    // another and desynchronise); RFC 9110 defines nothing from 600 on.
    if (code < 200 || code > 599) {
        PyErr_Format(PyExc_ValueError, "invalid HTTP status %ld: a response's status is 200 to 599", code);
        return std::nullopt;
    }
    return static_cast<unsigned>(code);
}

bool for_each_header(PyObject* headers,
                     const std::function<bool(std::string_view, std::string_view, PyObject*)>& on_field) {
    if (!headers || headers == Py_None) return true;
    // A list or tuple (what apps send) is indexed in place; any other
    // iterable is materialized first.
    py::ref seq = py::ref::steal(PySequence_Fast(headers, "'headers' must be an iterable of [name, value] pairs"));
    if (!seq) return false;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq.get());
    for (Py_ssize_t i = 0; i < count; ++i) {
        PyObject* item = PySequence_Fast_GET_ITEM(seq.get(), i);   // borrowed
        py::ref pair = py::ref::steal(PySequence_Fast(item, "each header must be a [name, value] pair"));
        if (!pair) return false;
        if (PySequence_Fast_GET_SIZE(pair.get()) != 2) {
            PyErr_SetString(PyExc_ValueError, "each header must be a [name, value] pair");
            return false;
        }
        Py_buffer nb{}, vb{};
        std::string_view n, v;
        if (!bytes_view(PySequence_Fast_GET_ITEM(pair.get(), 0), nb, n)) return false;
        if (!bytes_view(PySequence_Fast_GET_ITEM(pair.get(), 1), vb, v)) {
            release_view(nb);
            return false;
        }
        struct release {
            Py_buffer &a, &b;
            ~release() {
                release_view(a);
                release_view(b);
            }
        } guard{nb, vb};
        if (!net::is_token(n) || !net::valid_field_value(v)) {
            PyErr_Format(PyExc_ValueError, "invalid response header %R", item);
            return false;
        }
        if (!on_field(n, v, item)) return false;
    }
    return true;
}

std::optional<response_start> parse_response_start(PyObject* message) {
    auto status = parse_status(message, "http.response.start");
    if (!status) return std::nullopt;
    response_start r;
    r.status = *status;
    PyObject* headers = PyDict_GetItemWithError(message, names::headers);   // borrowed
    if (!headers && PyErr_Occurred()) return std::nullopt;
    bool ok = for_each_header(headers, [&](std::string_view n, std::string_view v, PyObject* item) {
        if (boost::beast::iequals(n, "content-length")) {
            std::uint64_t len = 0;
            auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), len);
            if (ec != std::errc{} || p != v.data() + v.size() || v.empty()) {
                PyErr_Format(PyExc_ValueError, "invalid Content-Length %R", item);
                return false;
            }
            r.declared = len;
            return true;
        }
        if (net::is_hop_by_hop(n)) {
            // The server frames the response itself; an app's Connection:
            // close is honoured, the other hop-by-hop fields are dropped.
            if (boost::beast::iequals(n, "connection") && v.find("close") != std::string_view::npos) r.close = true;
            return true;
        }
        r.fields.append(n);
        r.fields += ": ";
        r.fields.append(v);
        r.fields += "\r\n";
        return true;
    });
    if (!ok) return std::nullopt;
    PyObject* trailers = PyDict_GetItemString(message, "trailers");   // borrowed
    if (trailers) {
        int t = PyObject_IsTrue(trailers);
        if (t < 0) return std::nullopt;
        r.trailers = t == 1;
    }
    return r;
}

std::optional<std::pair<unsigned, std::string>> parse_informational(PyObject* message) {
    PyObject* st = PyDict_GetItemWithError(message, names::status);   // borrowed
    if (!st || !PyLong_Check(st)) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "http.response.informational needs an int 'status'");
        return std::nullopt;
    }
    long code = PyLong_AsLong(st);
    if (code == -1 && PyErr_Occurred()) return std::nullopt;
    // 101 switches protocols, which an app cannot do here.
    if (code < 100 || code > 199 || code == 101) {
        PyErr_Format(PyExc_ValueError, "invalid interim status %ld: http.response.informational takes 100 to 199, not 101", code);
        return std::nullopt;
    }
    std::string fields;
    PyObject* headers = PyDict_GetItemWithError(message, names::headers);   // borrowed
    if (!headers && PyErr_Occurred()) return std::nullopt;
    bool ok = for_each_header(headers, [&](std::string_view n, std::string_view v, PyObject*) {
        if (net::is_hop_by_hop(n) || boost::beast::iequals(n, "content-length")) return true;
        fields.append(n).append(": ").append(v).append("\r\n");
        return true;
    });
    if (!ok) return std::nullopt;
    return std::make_pair(static_cast<unsigned>(code), std::move(fields));
}

bool parse_trailers(PyObject* message, std::string& fields, bool& more) {
    PyObject* headers = PyDict_GetItemWithError(message, names::headers);   // borrowed
    if (!headers && PyErr_Occurred()) return false;
    bool ok = for_each_header(headers, [&](std::string_view n, std::string_view v, PyObject*) {
        // RFC 9110 6.5.1: no field that frames the message, routes it or
        // authenticates it belongs in trailers; the framing ones are dropped.
        if (net::is_hop_by_hop(n) || boost::beast::iequals(n, "content-length") ||
            boost::beast::iequals(n, "content-type") || boost::beast::iequals(n, "host"))
            return true;
        fields.append(n).append(": ").append(v).append("\r\n");
        return true;
    });
    if (!ok) return false;
    PyObject* m = PyDict_GetItemString(message, "more_trailers");   // borrowed
    int t = m ? PyObject_IsTrue(m) : 0;
    if (t < 0) return false;
    more = t == 1;
    return true;
}

std::optional<std::string> order_error(send_state state, std::string_view type) {
    auto expected = [&](const char* want) {
        return "Expected ASGI message '" + std::string(want) + "', but got '" + std::string(type) + "'.";
    };
    switch (state) {
    case send_state::start:
        if (type == "http.response.start" || type == "http.response.informational") return std::nullopt;
        return expected("http.response.start");
    case send_state::body:
        if (type == "http.response.body" || type == "http.response.pathsend") return std::nullopt;
        return expected("http.response.body");
    case send_state::trailers:
        if (type == "http.response.trailers") return std::nullopt;
        return expected("http.response.trailers");
    case send_state::done:
        break;
    }
    return "Unexpected ASGI message '" + std::string(type) + "' sent, after response already completed.";
}

} // namespace trestle::asgi
