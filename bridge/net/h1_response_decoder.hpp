#pragma once
// Reads back the HTTP/1.1 response bytes an exchange's app side produced
// (response_writer's heads, sized or chunked bodies, trailers; the server's
// own error answers) as the parts an HTTP/2 stream sends: interim heads,
// the final head, body bytes, the end with its trailers.
//
// Why translate rather than have every adapter speak both: the adapters
// write one format through one writer (response_writer), which is
// optimized for HTTP/1.1, the common case; the HTTP/2 side pays a scan of
// the head and of chunk-size lines, which is small next to HPACK and frame
// work. The input is the server's own output, but a proxied upstream's
// field values pass through it, so it is parsed with care all the same.
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace trestle::net {

class h1_response_decoder {
public:
    using fields = std::vector<std::pair<std::string, std::string>>;   // names lower-case

    struct sink {
        virtual void on_head(unsigned status, fields f, bool final) = 0;
        virtual void on_body(std::string_view data) = 0;
        // The body is complete; `trailers` may be empty.
        virtual void on_end(fields trailers) = 0;

    protected:
        ~sink() = default;
    };

    // `head_request`: the final response has no body whatever its fields say.
    explicit h1_response_decoder(bool head_request) : head_request_(head_request) {}

    // Consumes `in` whole. False when it is malformed (the stream is then reset).
    bool feed(std::string_view in, sink& s);
    // The app finished: a body delimited by the end (no length, not chunked)
    // ends here. False if the response was not complete.
    bool finish(sink& s);
    // `n` body bytes went out another way (a file): counted as if fed.
    void skip(std::uint64_t n, sink& s);
    bool complete() const { return state_ == state::done; }
    bool head_seen() const { return state_ != state::head; }

private:
    enum class state { head, sized, chunk_size, chunk_data, chunk_crlf, trailers, until_end, done };
    bool parse_head(std::string_view block, sink& s);
    bool parse_fields(std::string_view block, fields& out);

    bool head_request_;
    state state_ = state::head;
    std::string pending_;          // a head, chunk-size line or trailer block still incomplete
    std::uint64_t left_ = 0;       // bytes of the sized body or current chunk
};

} // namespace trestle::net
