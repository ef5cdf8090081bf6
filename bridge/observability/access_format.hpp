#pragma once
// The access log's line formats: the names combined (the default), common
// and json, or a gunicorn --access-logformat string ("%(h)s %(s)s ..."). A
// format is compiled once, at startup, into a list of pieces; rendering a
// line walks them and appends to one buffer, with no parsing and no other
// allocation.
#include "bridge/net/request.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace trestle {

// The facts about one finished request that a line is made of.
struct access_record {
    const net::request_head* head = nullptr;
    const net::endpoint_info* endpoint = nullptr;
    unsigned status = 0;                         // 0: no response was sent
    std::uint64_t bytes = 0;                     // body bytes sent
    std::chrono::nanoseconds duration{0};
    std::chrono::system_clock::time_point now;   // when the line is written
    // The response's header lines ("Name: value\r\n" each), when captured
    // (access_format::needs_response_head).
    std::string_view response_head;
    long pid = 0;
};

class access_format {
public:
    // What a piece writes: literal text, or one of gunicorn's atoms (the
    // letter in the comment), or a request value its {NAME}e maps to.
    enum class atom : std::uint8_t {
        literal,
        remote_addr,       // h
        dash,              // l
        user,              // u
        time,              // t
        request_line,      // r
        method,            // m
        path,              // U
        query,             // q
        protocol,          // H
        status,            // s
        bytes,             // B
        bytes_clf,         // b
        referer,           // f
        user_agent,        // a
        seconds,           // T
        millis,            // M
        micros,            // D
        decimal_seconds,   // L
        pid,               // p
        request_header,    // {name}i
        response_header,   // {name}o
        target,            // {raw_uri}e, {request_uri}e
        remote_port,       // {remote_port}e
        server_name,       // {server_name}e
        server_port,       // {server_port}e
        scheme,            // {wsgi.url_scheme}e
    };
    struct piece {
        atom what;
        std::string text;   // the literal, or the lower-case header name
    };

    // `spec` is a format name or a format string. Returns nullopt with a
    // one-line `why` when it is not a format the log can write.
    static std::optional<access_format> compile(std::string_view spec, std::string& why);

    // Appends one line, '\n' included.
    void render(const access_record& r, std::string& out) const;
    // Whether the response header lines must be kept for render().
    bool needs_response_head() const { return needs_response_head_; }
    bool is_json() const { return json_; }
    const std::vector<piece>& pieces() const { return pieces_; }

private:
    access_format() = default;
    void render_pieces(const access_record& r, std::string& out) const;
    void render_json(const access_record& r, std::string& out) const;

    std::vector<piece> pieces_;
    bool json_ = false;
    bool needs_response_head_ = false;
};

// The named formats as format strings (json has none: its keys are fixed).
inline constexpr std::string_view combined_format = R"(%(h)s - - %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(L)s)";
inline constexpr std::string_view common_format = R"(%(h)s - - %(t)s "%(r)s" %(s)s %(b)s)";

// Appends `v` for a text log line: '"', '\\', control bytes and bytes
// outside ASCII as \xNN, so a client cannot forge a line or a field.
void append_log_escaped(std::string& out, std::string_view v);
// Appends `v` as the inside of a JSON string. Valid UTF-8 is kept; a byte
// that is not part of it becomes \u00NN, its Latin-1 reading (as WSGI reads
// header bytes), so the line is always valid JSON and no byte is lost.
void append_json_escaped(std::string& out, std::string_view v);
// A header's value in "Name: value\r\n" lines; the first of that name.
std::optional<std::string_view> find_field(std::string_view lines, std::string_view lower_name);

} // namespace trestle
