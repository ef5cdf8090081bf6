#include "adapters/wsgi/environ.hpp"

#include "adapters/wsgi/wsgi.hpp"
#include "bridge/net/tls_io.hpp"
#include "bridge/python/names.hpp"

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/field.hpp>

namespace trestle::wsgi {

namespace {

namespace names = py::names;

py::ref latin1(std::string_view s);

// mod_ssl's names, which Django and Flask extensions read behind Apache:
// SSL_PROTOCOL, SSL_CIPHER, and with a client certificate SSL_CLIENT_CERT
// (PEM), SSL_CLIENT_S_DN and SSL_CLIENT_VERIFY.
bool set_tls_variables(PyObject* d, const net::tls_info& t) {
    auto put = [d](const char* key, const std::string& value) {
        py::ref v = latin1(value);
        return v && PyDict_SetItemString(d, key, v.get()) == 0;
    };
    if (!put("SSL_PROTOCOL", t.version) || !put("SSL_CIPHER", t.cipher)) return false;
    if (t.client_chain.empty()) return put("SSL_CLIENT_VERIFY", "NONE");
    return put("SSL_CLIENT_CERT", t.client_chain.front()) && put("SSL_CLIENT_S_DN", t.client_name) &&
           put("SSL_CLIENT_VERIFY", t.client_error.empty() ? "SUCCESS" : "FAILED:" + t.client_error);
}

py::ref latin1(std::string_view s) {
    return py::ref::steal(PyUnicode_DecodeLatin1(s.data(), static_cast<Py_ssize_t>(s.size()), nullptr));
}

} // namespace

std::string cgi_header_name(std::string_view name) {
    if (name.find('_') != std::string_view::npos) return {};
    if (boost::beast::iequals(name, "content-type")) return "CONTENT_TYPE";
    if (boost::beast::iequals(name, "content-length")) return "CONTENT_LENGTH";
    std::string key;
    key.reserve(5 + name.size());
    key = "HTTP_";
    for (char c : name) key += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return key;
}

environ_builder::environ_builder(std::string script_name) : script_name_(std::move(script_name)) {
    base_ = py::ref::steal(PyDict_New());
    PyObject* d = base_.get();
    py::ref sys = py::ref::steal(PyImport_ImportModule("sys"));
    py::ref err = py::ref::steal(sys ? PyObject_GetAttrString(sys.get(), "stderr") : nullptr);
    PyErr_Clear();
    py::set_item(d, names::wsgi_version, py::ref::steal(Py_BuildValue("(ii)", 1, 0)));
    PyDict_SetItem(d, names::wsgi_url_scheme, names::http);
    if (err) py::set_item(d, names::wsgi_errors, std::move(err));
    PyDict_SetItem(d, names::wsgi_multithread, Py_True);
    PyDict_SetItem(d, names::wsgi_multiprocess, Py_False);
    PyDict_SetItem(d, names::wsgi_run_once, Py_False);
    PyDict_SetItem(d, names::wsgi_input_terminated, Py_True);
    PyDict_SetItem(d, names::wsgi_file_wrapper, file_wrapper_type());
    py::set_item(d, names::SERVER_SOFTWARE, py::ref::steal(PyUnicode_FromString("trestle/" TRESTLE_VERSION)));
    py::set_item(d, names::SCRIPT_NAME, latin1(script_name_));
    known_keys_.resize(512);
}

environ_builder::~environ_builder() = default;

py::ref environ_builder::header_key(const net::header_field& f) const {
    if (f.known > 0 && static_cast<std::size_t>(f.known) < known_keys_.size()) {
        py::ref& slot = known_keys_[static_cast<std::size_t>(f.known)];
        if (!slot) {
            std::string key = cgi_header_name(f.name);
            if (key.empty()) return {};
            PyObject* s = PyUnicode_FromStringAndSize(key.data(), static_cast<Py_ssize_t>(key.size()));
            if (!s) return {};
            PyUnicode_InternInPlace(&s);
            slot = py::ref::steal(s);
        }
        return slot.copy();
    }
    std::string key = cgi_header_name(f.name);
    if (key.empty()) return {};
    return py::ref::steal(PyUnicode_FromStringAndSize(key.data(), static_cast<Py_ssize_t>(key.size())));
}

py::ref environ_builder::build(const net::request_head& h, const net::endpoint_info& ep, py::borrowed input) const {
    py::ref env = py::ref::steal(PyDict_Copy(base_.get()));
    if (!env) return {};
    PyObject* d = env.get();

    PyObject* method = h.method == "GET" ? names::GET : h.method == "POST" ? names::POST : h.method == "HEAD" ? names::HEAD : nullptr;
    if (method) {
        if (PyDict_SetItem(d, names::REQUEST_METHOD, method) < 0) return {};
    } else if (!py::set_item(d, names::REQUEST_METHOD, latin1(h.method))) {
        return {};
    }

    // PATH_INFO is what follows the mount prefix (SCRIPT_NAME) in the
    // decoded path, as the router split it (request_head::routed).
    if (!py::set_item(d, names::PATH_INFO, latin1(h.routed.rest()))) return {};
    std::string_view query = h.query();
    if (query.empty()) {
        if (PyDict_SetItem(d, names::QUERY_STRING, names::empty) < 0) return {};
    } else if (!py::set_item(d, names::QUERY_STRING, latin1(query))) {
        return {};
    }
    py::ref target = latin1(h.target);
    if (!target) return {};
    PyDict_SetItem(d, names::REQUEST_URI, target.get());
    py::set_item(d, names::RAW_URI, std::move(target));
    PyDict_SetItem(d, names::SERVER_PROTOCOL, h.version == 10 ? names::http10 : h.version == 20 ? names::http2 : names::http11);
    if (!py::set_item(d, names::SERVER_NAME, latin1(ep.server_name)) ||
        !py::set_item(d, names::SERVER_PORT, latin1(ep.server_port)))
        return {};
    if (!ep.is_unix) {
        if (!py::set_item(d, names::REMOTE_ADDR, latin1(ep.remote_addr)) ||
            !py::set_item(d, names::REMOTE_PORT, latin1(ep.remote_port)))
            return {};
    } else {
        PyDict_SetItem(d, names::REMOTE_ADDR, names::empty);
    }
    if (PyDict_SetItem(d, names::wsgi_input, input) < 0) return {};
    if (ep.scheme == "https") {   // TLS, or a trusted proxy says so (--forwarded-allow-ips)
        if (PyDict_SetItem(d, names::wsgi_url_scheme, names::https) < 0 || PyDict_SetItem(d, names::HTTPS, names::on) < 0)
            return {};
    }
    if (ep.tls && !set_tls_variables(d, *ep.tls)) return {};

    for (const auto& f : h.headers) {
        py::ref key = header_key(f);
        if (!key) {
            if (PyErr_Occurred()) return {};
            continue;   // names with '_' are dropped (no HTTP_X_FORWARDED_FOR spoofing)
        }
        if (f.known == static_cast<int>(boost::beast::http::field::content_length) ||
            boost::beast::iequals(f.name, "content-length")) {
            // The parser has already checked that every Content-Length agrees
            // (RFC 9110 8.6 lets "5, 5" stand for 5): give the app one number.
            if (h.chunked || !h.content_length || PyDict_Contains(d, names::CONTENT_LENGTH)) continue;
            std::string n = std::to_string(*h.content_length);
            if (!py::set_item(d, names::CONTENT_LENGTH,
                              py::ref::steal(PyUnicode_FromStringAndSize(n.data(), static_cast<Py_ssize_t>(n.size())))))
                return {};
            continue;
        }
        py::ref value = latin1(f.value);
        if (!value) return {};
        py::borrowed existing = PyDict_SetDefault(d, key.get(), value.get());
        if (!existing) return {};
        if (existing != value.get()) {
            // A repeated field: join as RFC 9110 5.3 allows (Cookie with "; ").
            bool cookie = boost::beast::iequals(f.name, "cookie");
            py::ref joined = py::ref::steal(PyUnicode_FromFormat(cookie ? "%U; %U" : "%U, %U", existing.get(), value.get()));
            if (!joined || PyDict_SetItem(d, key.get(), joined.get()) < 0) return {};
        }
    }
    return env;
}

} // namespace trestle::wsgi
