#pragma once
// One response as shadow mode compares it, read back from the HTTP/1.1
// bytes an app side wrote (the same bytes a connection would send; see
// net::h1_response_decoder). The body is kept up to a cap; past it only its
// size and digest are, so a large answer costs no more memory than a small
// one.
#include "bridge/net/h1_response_decoder.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace trestle::shadow {

struct captured_response {
    unsigned status = 0;
    std::vector<std::pair<std::string, std::string>> headers;   // the final head; names lower-case
    std::string body;                                           // the first `cap` bytes
    std::uint64_t size = 0;                                     // body bytes in all
    std::uint64_t digest = 14695981039346656037ull;             // FNV-1a (64) of all of them
    bool complete = false;    // the response ended as its framing said
    bool malformed = false;   // the bytes were not a response
    bool unseen = false;      // part of the body went out as a file, not seen here

    bool truncated() const { return size > body.size(); }
    // Status, the named header fields and the body are the same.
    bool same_as(const captured_response& o, const std::vector<std::string>& fields) const;
    const std::string* field(std::string_view lower_name) const;
};

class response_capture final : net::h1_response_decoder::sink {
public:
    response_capture(bool head_request, std::size_t cap) : decoder_(head_request), cap_(cap) {}

    void feed(std::string_view bytes);
    // `n` body bytes went out as a file.
    void file(std::uint64_t n);
    // The app finished: a body that runs to the end ends here.
    void finish();
    captured_response& result() { return r_; }

private:
    void on_head(unsigned status, net::h1_response_decoder::fields f, bool final) override;
    void on_body(std::string_view data) override;
    void on_end(net::h1_response_decoder::fields trailers) override;

    net::h1_response_decoder decoder_;
    std::size_t cap_;
    captured_response r_;
};

} // namespace trestle::shadow
