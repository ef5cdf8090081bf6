#include "bridge/net/h1_response_decoder.hpp"

#include "bridge/net/http_util.hpp"

#include <boost/beast/core/string.hpp>

#include <charconv>
#include <optional>

namespace trestle::net {

namespace {

// Fields that mean something only to one HTTP/1.1 connection (RFC 9113
// 8.2.2): never sent on an HTTP/2 stream.
bool connection_specific(std::string_view lower) {
    return lower == "connection" || lower == "keep-alive" || lower == "proxy-connection" ||
           lower == "transfer-encoding" || lower == "upgrade";
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

} // namespace

bool h1_response_decoder::parse_fields(std::string_view block, fields& out) {
    while (!block.empty()) {
        auto eol = block.find("\r\n");
        std::string_view line = block.substr(0, eol);
        block = eol == std::string_view::npos ? std::string_view() : block.substr(eol + 2);
        if (line.empty()) continue;
        auto colon = line.find(':');
        if (colon == std::string_view::npos || colon == 0) return false;
        std::string name(line.substr(0, colon));
        for (char& c : name) c = ascii_lower(c);
        if (connection_specific(name)) continue;
        out.emplace_back(std::move(name), std::string(trim(line.substr(colon + 1))));
    }
    return true;
}

bool h1_response_decoder::parse_head(std::string_view block, sink& s) {
    // "HTTP/1.1 200 OK\r\n" then the fields.
    auto eol = block.find("\r\n");
    std::string_view line = block.substr(0, eol);
    if (line.size() < 12 || !line.starts_with("HTTP/1.")) return false;
    unsigned status = 0;
    auto [p, ec] = std::from_chars(line.data() + 9, line.data() + 12, status);
    if (ec != std::errc{} || p != line.data() + 12 || status < 100 || status > 999) return false;
    fields f;
    if (!parse_fields(eol == std::string_view::npos ? std::string_view() : block.substr(eol + 2), f)) return false;
    if (status < 200) {
        // 101 has no place in HTTP/2 (no upgrades); other interim heads pass.
        if (status == 101) return false;
        s.on_head(status, std::move(f), false);
        return true;   // the final head follows
    }
    std::optional<std::uint64_t> length;
    bool chunked = false;
    for (auto& [n, v] : f) {
        if (n == "content-length") {
            std::uint64_t l = 0;
            auto [q, e] = std::from_chars(v.data(), v.data() + v.size(), l);
            if (e != std::errc{} || q != v.data() + v.size()) return false;
            length = l;
        }
    }
    // Transfer-Encoding was dropped from the fields; look at the raw block.
    for (std::string_view rest = block; !rest.empty();) {
        auto e = rest.find("\r\n");
        std::string_view l = rest.substr(0, e);
        rest = e == std::string_view::npos ? std::string_view() : rest.substr(e + 2);
        if (l.size() > 18 && boost::beast::iequals(l.substr(0, 18), "transfer-encoding:")) chunked = true;
    }
    s.on_head(status, std::move(f), true);
    bool bodiless = head_request_ || status == 204 || status == 304;
    if (bodiless || (!chunked && length && *length == 0)) {
        state_ = state::done;
        s.on_end({});
    } else if (chunked) {
        state_ = state::chunk_size;
    } else if (length) {
        state_ = state::sized;
        left_ = *length;
    } else {
        state_ = state::until_end;
    }
    return true;
}

bool h1_response_decoder::feed(std::string_view in, sink& s) {
    std::string carry;   // what follows a block, once pending_ is reused
    while (!in.empty()) {
        switch (state_) {
        case state::head:
        case state::chunk_size:
        case state::trailers: {
            // A block: a head or trailers (up to a blank line), or a chunk-size line.
            pending_.append(in);
            in = {};
            while (state_ == state::head || state_ == state::chunk_size || state_ == state::trailers) {
                std::size_t at, used;
                if (state_ == state::chunk_size) {
                    at = pending_.find("\r\n");
                    used = at + 2;
                } else if (state_ == state::trailers && pending_.starts_with("\r\n")) {
                    at = 0;   // no trailers
                    used = 2;
                } else {
                    at = pending_.find("\r\n\r\n");
                    used = at + 4;
                }
                if (at == std::string::npos) return pending_.size() <= (1 << 20);
                std::string_view block = std::string_view(pending_).substr(0, at);
                if (state_ == state::head) {
                    if (!parse_head(block, s)) return false;
                } else if (state_ == state::chunk_size) {
                    std::string_view size = block;
                    if (auto semi = size.find(';'); semi != std::string_view::npos) size = size.substr(0, semi);
                    size = trim(size);
                    std::uint64_t n = 0;
                    auto [p, ec] = std::from_chars(size.data(), size.data() + size.size(), n, 16);
                    if (size.empty() || ec != std::errc{} || p != size.data() + size.size()) return false;
                    left_ = n;
                    state_ = n == 0 ? state::trailers : state::chunk_data;
                } else {
                    fields t;
                    if (!parse_fields(block, t)) return false;
                    state_ = state::done;
                    s.on_end(std::move(t));
                }
                pending_.erase(0, used);
            }
            carry.swap(pending_);
            pending_.clear();
            in = carry;
            break;
        }
        case state::sized:
        case state::chunk_data: {
            std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(left_, in.size()));
            if (take > 0) s.on_body(in.substr(0, take));
            in.remove_prefix(take);
            left_ -= take;
            if (left_ == 0) {
                if (state_ == state::sized) {
                    state_ = state::done;
                    s.on_end({});
                } else {
                    state_ = state::chunk_crlf;
                }
            }
            break;
        }
        case state::chunk_crlf:
            // The CRLF after a chunk's data, possibly split across feeds.
            if (in.front() == '\n') state_ = state::chunk_size;
            else if (in.front() != '\r') return false;
            in.remove_prefix(1);
            break;
        case state::until_end:
            s.on_body(in);
            in = {};
            break;
        case state::done:
            return false;   // bytes after the end
        }
    }
    return true;
}

void h1_response_decoder::skip(std::uint64_t n, sink& s) {
    if (state_ != state::sized) return;
    left_ -= std::min(left_, n);
    if (left_ == 0) {
        state_ = state::done;
        s.on_end({});
    }
}

bool h1_response_decoder::finish(sink& s) {
    if (state_ == state::until_end) {
        state_ = state::done;
        s.on_end({});
    }
    return state_ == state::done;
}

} // namespace trestle::net
