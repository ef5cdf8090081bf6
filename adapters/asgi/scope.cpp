#include "adapters/asgi/scope.hpp"

#include "bridge/net/http_util.hpp"
#include "bridge/net/tls_io.hpp"

#include "bridge/python/names.hpp"

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/rfc7230.hpp>

#include <cctype>
#include <charconv>

namespace trestle::asgi {

namespace {

namespace names = py::names;

py::ref bytes(std::string_view s) {
    return py::ref::steal(PyBytes_FromStringAndSize(s.data(), static_cast<Py_ssize_t>(s.size())));
}

// Header names lower-cased, as the spec requires, in one allocation.
py::ref lower_bytes(std::string_view s) {
    py::ref b = py::ref::steal(PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(s.size())));
    if (!b) return {};
    char* p = PyBytes_AS_STRING(b.get());
    for (std::size_t i = 0; i < s.size(); ++i) p[i] = net::ascii_lower(s[i]);
    return b;
}

// (host, port): built by hand, Py_BuildValue's format parsing costs more
// than the tuple.
py::ref host_port(const std::string& host, const std::string& port) {
    long p = 0;
    std::from_chars(port.data(), port.data() + port.size(), p);
    py::ref h = py::ref::steal(PyUnicode_DecodeLatin1(host.data(), static_cast<Py_ssize_t>(host.size()), nullptr));
    py::ref n = py::ref::steal(h ? PyLong_FromLong(p) : nullptr);
    py::ref t = py::ref::steal(n ? PyTuple_New(2) : nullptr);
    if (!t) return {};
    PyTuple_SET_ITEM(t.get(), 0, h.release());   // steals
    PyTuple_SET_ITEM(t.get(), 1, n.release());
    return t;
}

py::ref text_or_none(const std::string& s) {
    if (s.empty()) return py::ref::borrow(Py_None);
    return py::ref::steal(PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace"));
}

// The ASGI "tls" extension: what the handshake settled.
py::ref tls_extension(const net::tls_info& t) {
    py::ref chain = py::ref::steal(PyList_New(0));
    if (!chain) return {};
    for (auto& pem : t.client_chain) {
        py::ref c = text_or_none(pem);
        if (!c || PyList_Append(chain.get(), c.get()) < 0) return {};
    }
    py::ref d = py::ref::steal(PyDict_New());
    if (!d) return {};
    struct item {
        const char* key;
        py::ref value;
    } items[] = {
        {"server_cert", text_or_none(t.server_cert)},
        {"client_cert_chain", std::move(chain)},
        {"client_cert_name", text_or_none(t.client_name)},
        {"client_cert_error", text_or_none(t.client_error)},
        {"tls_version", t.version_number ? py::ref::steal(PyLong_FromLong(t.version_number)) : py::ref::borrow(Py_None)},
        {"cipher_suite", t.cipher_id ? py::ref::steal(PyLong_FromLong(t.cipher_id)) : py::ref::borrow(Py_None)},
    };
    for (auto& i : items)
        if (!i.value || PyDict_SetItemString(d.get(), i.key, i.value.get()) < 0) return {};
    return d;
}

} // namespace

scope_builder::scope_builder(std::string root_path) : root_(std::move(root_path)) {
    asgi_ = py::ref::steal(Py_BuildValue("{s:s,s:s}", "version", "3.0", "spec_version", http_spec_version));
    http_extensions_ = py::ref::steal(Py_BuildValue("{s:{},s:{},s:{}}", "http.response.pathsend", "http.response.trailers",
                                                    "http.response.informational"));
    ws_extensions_ = py::ref::steal(Py_BuildValue("{s:{}}", "websocket.http.response"));
    root_path_ = py::ref::steal(PyUnicode_DecodeUTF8(root_.data(), static_cast<Py_ssize_t>(root_.size()), "replace"));
}

py::ref scope_builder::build(const net::request_head& h, const net::endpoint_info& ep) const {
    return common(h, ep, false);
}

py::ref scope_builder::build_websocket(const net::request_head& h, const net::endpoint_info& ep) const {
    py::ref scope = common(h, ep, true);
    if (!scope) return {};
    py::ref list = py::ref::steal(PyList_New(0));
    PyObject* protos = list.get();   // borrowed: the scope holds it
    if (!py::set_item(scope.get(), names::subprotocols, std::move(list))) return {};
    for (auto& f : h.headers) {
        if (!boost::beast::iequals(f.name, "sec-websocket-protocol")) continue;
        for (auto tok : boost::beast::http::token_list{f.value}) {
            py::ref p = py::ref::steal(PyUnicode_DecodeLatin1(tok.data(), static_cast<Py_ssize_t>(tok.size()), nullptr));
            if (!p || PyList_Append(protos, p.get()) < 0) return {};
        }
    }
    return scope;
}

// The keys every scope has, in the order apps see them, with the values
// that never change filled in: copying it clones the key table in one go,
// and setting an existing key neither inserts nor resizes.
py::ref scope_builder::template_for(bool websocket) const {
    py::ref& t = websocket ? ws_template_ : http_template_;
    if (t) return py::ref::borrow(t.get());
    py::ref d = py::ref::steal(PyDict_New());
    if (!d) return {};
    PyObject* keys[] = {names::type,     names::asgi,      names::extensions,   names::http_version, names::method,
                        names::scheme,   names::path,      names::raw_path,     names::query_string, names::root_path,
                        names::headers,  names::client,    names::server};
    for (PyObject* k : keys) {
        if (websocket && k == names::method) continue;   // a websocket scope has no method
        if (PyDict_SetItem(d.get(), k, Py_None) < 0) return {};
    }
    if (PyDict_SetItem(d.get(), names::type, websocket ? names::websocket : names::http) < 0 ||
        PyDict_SetItem(d.get(), names::asgi, asgi_.get()) < 0 ||
        PyDict_SetItem(d.get(), names::extensions, websocket ? ws_extensions_.get() : http_extensions_.get()) < 0 ||
        PyDict_SetItem(d.get(), names::scheme, websocket ? names::ws : names::http) < 0 ||
        PyDict_SetItem(d.get(), names::root_path, root_path_.get()) < 0)
        return {};
    t = std::move(d);
    return py::ref::borrow(t.get());
}

py::ref scope_builder::common(const net::request_head& h, const net::endpoint_info& ep, bool websocket) const {
    py::ref tmpl = template_for(websocket);
    py::ref scope = py::ref::steal(tmpl ? PyDict_Copy(tmpl.get()) : nullptr);
    if (!scope) return {};
    PyObject* d = scope.get();
    PyDict_SetItem(d, names::http_version, h.version == 10 ? names::v10 : h.version == 20 ? names::v2 : names::v11);
    if (!websocket) {
        PyObject* method = h.method == "GET" ? names::GET : h.method == "POST" ? names::POST : h.method == "HEAD" ? names::HEAD : nullptr;
        if (method) PyDict_SetItem(d, names::method, method);
        else if (!py::set_item(d, names::method, py::ref::steal(PyUnicode_DecodeLatin1(h.method.data(), static_cast<Py_ssize_t>(h.method.size()), nullptr))))
            return {};
    }

    // path is root_path plus the rest (the ASGI spec's whole path), unless
    // the app wants the prefix stripped (see set_path_excludes_root), both
    // as the router split the decoded path (request_head::routed); raw_path
    // is the path as sent.
    std::string path = strip_root_ ? std::string(h.routed.rest()) : root_ + std::string(h.routed.rest());
    if (!py::set_item(d, names::path, py::ref::steal(PyUnicode_DecodeUTF8(path.data(), static_cast<Py_ssize_t>(path.size()), "replace"))) ||
        !py::set_item(d, names::raw_path, bytes(h.path())) || !py::set_item(d, names::query_string, bytes(h.query())))
        return {};

    py::ref list = py::ref::steal(PyList_New(static_cast<Py_ssize_t>(h.headers.size())));
    PyObject* headers = list.get();   // borrowed: the scope holds it
    if (!py::set_item(d, names::headers, std::move(list))) return {};
    for (std::size_t i = 0; i < h.headers.size(); ++i) {
        py::ref name = lower_bytes(h.headers[i].name);
        py::ref value = bytes(h.headers[i].value);
        py::ref pair = py::ref::steal(name && value ? PyTuple_Pack(2, name.get(), value.get()) : nullptr);
        if (!pair) return {};
        PyList_SET_ITEM(headers, static_cast<Py_ssize_t>(i), pair.release());   // steals
    }
    if (ep.scheme == "https") {   // TLS, or a trusted proxy says so (--forwarded-allow-ips)
        if (PyDict_SetItem(d, names::scheme, websocket ? names::wss : names::https) < 0) return {};
    }
    if (ep.tls) {
        // Per connection: the shared extensions dict, copied, plus "tls".
        py::ref ext = py::ref::steal(PyDict_Copy(websocket ? ws_extensions_.get() : http_extensions_.get()));
        py::ref tls = tls_extension(*ep.tls);
        if (!ext || !tls || PyDict_SetItemString(ext.get(), "tls", tls.get()) < 0 ||
            !py::set_item(d, names::extensions, std::move(ext)))
            return {};
    }
    if (ep.is_unix) {
        PyDict_SetItem(d, names::client, Py_None);
        PyDict_SetItem(d, names::server, Py_None);
    } else {
        if (!py::set_item(d, names::client, host_port(ep.remote_addr, ep.remote_port))) return {};
        // Every connection of a listener has the same server address: the
        // tuple (immutable) is built once per address and shared.
        if (ep.server_name != server_name_ || ep.server_port != server_port_ || !server_) {
            server_ = host_port(ep.server_name, ep.server_port);
            if (!server_) return {};
            server_name_ = ep.server_name;
            server_port_ = ep.server_port;
        }
        PyDict_SetItem(d, names::server, server_.get());
    }
    if (state_ && !py::set_item(d, names::state, py::ref::steal(PyDict_Copy(state_.get())))) return {};
    return scope;
}

} // namespace trestle::asgi
