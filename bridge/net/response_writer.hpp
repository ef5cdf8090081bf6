#pragma once
// The framing of one HTTP/1.1 response, shared by every adapter: the head
// (status line, the app's fields, Server, Date, Content-Length or chunked,
// Connection), body chunks, the end, and the keep-alive verdict. It only
// builds bytes in out(); the adapter decides how to hand them to the
// exchange (blocking on a pool thread, or with a future on the loop).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace trestle::net {

class app_port;
struct server_context;

class response_writer {
public:
    response_writer(app_port& ex, const server_context& ctx);
    ~response_writer();
    response_writer(const response_writer&) = delete;
    response_writer& operator=(const response_writer&) = delete;

    // The app's status and fields, already validated and serialized as
    // "Name: value\r\n" lines (without Content-Length, which is `declared`).
    // May be called again until the head is emitted.
    void set_head(unsigned status, std::string_view status_line, std::string fields,
                  std::optional<std::uint64_t> declared);
    bool has_head() const { return status_ != 0; }
    bool head_emitted() const { return head_emitted_; }
    bool finished() const { return finished_; }

    // Appends the head. `known_length` is the whole body length when the
    // adapter knows it (a single final chunk); otherwise the writer chooses
    // chunked (HTTP/1.1) or close-delimited (HTTP/1.0).
    void emit_head(std::optional<std::uint64_t> known_length);
    void append_body(std::string_view data);
    // Appends the end of the body (the last chunk, with `trailers`, lines
    // of "Name: value\r\n", when the body is chunked: otherwise they are
    // dropped) and checks the length.
    void end_body(std::string_view trailers = {});
    // An interim response (1xx) before the head: sent at once, except to an
    // HTTP/1.0 client, which would not expect one (RFC 9110 15.2).
    void informational(unsigned status, std::string_view fields);
    // The connection must close after this response (the app asked for it,
    // or the response cannot be completed).
    void close_after() { close_requested_ = true; }
    void abandon() { close_requested_ = true; }
    // A complete error response from the server itself, replacing anything
    // not yet emitted.
    void error_response(unsigned status);
    // Hands out() and the verdict to the exchange. Exactly once.
    void finish(bool client_gone);

    std::string& out() { return out_; }
    unsigned status() const { return status_; }
    bool no_body() const { return no_body_; }
    std::optional<std::uint64_t> declared_length() const { return declared_; }
    std::uint64_t body_sent() const { return sent_; }
    void add_sent(std::uint64_t n);   // bytes sent outside out() (sendfile)

private:
    bool can_keep_alive() const;

    app_port& ex_;
    const server_context& ctx_;
    unsigned status_ = 0;
    std::string status_line_;
    std::string fields_;
    std::optional<std::uint64_t> declared_;
    bool head_emitted_ = false;
    bool finished_ = false;
    bool chunked_ = false;
    bool no_body_ = false;
    bool keep_alive_ = false;
    bool close_requested_ = false;
    std::uint64_t sent_ = 0;
    std::string out_;
};

} // namespace trestle::net
