#pragma once
// Internals of the WSGI adapter (PEP 3333). Everything here runs on a pool
// thread with the GIL held unless a comment says otherwise.
#include "bridge/net/response_writer.hpp"
#include "bridge/python/ref.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace trestle::net { class app_port; struct server_context; }

namespace trestle::wsgi {

// Creates the Python types below. Call once, with the GIL, before serving.
void init_types();
void init_response_type();
void init_input_type();
void init_file_wrapper_type();

// ---- wsgi.input ---------------------------------------------------------
py::ref new_input(net::app_port* ex);
// Cuts the stream off from its exchange once the request is over, so an app
// that kept a reference gets an error instead of touching freed state.
void detach_input(py::borrowed input);

// ---- wsgi.file_wrapper ----------------------------------------------------
py::borrowed file_wrapper_type();     // lives for the process
// If `obj` is a FileWrapper over a regular file, returns the file's
// descriptor and current position. Never raises.
struct file_region { int fd; std::uint64_t offset; std::uint64_t size; };
std::optional<file_region> file_wrapper_region(PyObject* obj);

// ---- the response side of one call ------------------------------------------
struct output_gate;

// Every public method below takes the call's output gate (output_gate.hpp)
// for its length, so threads of the app's may call write() and
// start_response() while the pool thread sends the body.
class call {
public:
    call(net::app_port& ex, const net::server_context& ctx);
    ~call();

    py::borrowed start_response() const { return start_response_; }

    // start_response(status, headers, exc_info=None); returns write or null
    // with an exception set.
    PyObject* on_start_response(PyObject* status, PyObject* headers, PyObject* exc_info);
    // write(data) and each chunk of the iterable. Returns false with an
    // exception set on a type error; false with none when the client is gone.
    bool on_body(PyObject* data);
    bool on_body_held(PyObject* data);   // the caller holds the gate
    // A whole body known in advance (list/tuple): one buffer, Content-Length.
    bool on_sequence(PyObject* seq);
    // A FileWrapper over a real file, sent with sendfile(2).
    bool on_file(const file_region& region);
    // The app has returned and close() has run: complete the response.
    void complete();
    // An exception escaped the app: answer 500 (or close if too late).
    void fail(std::string_view context);

    bool started() const { return started_; }
    bool finished() const { return w_.finished(); }
    bool client_gone() const { return gone_; }

private:
    output_gate& gate() const;
    void reject_held(unsigned status);
    bool emit_head(std::optional<std::uint64_t> known_length);
    bool flush();

    net::app_port& ex_;
    net::response_writer w_;
    py::ref start_response_;
    bool started_ = false;
    bool gone_ = false;
};

} // namespace trestle::wsgi
