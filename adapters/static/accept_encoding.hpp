#pragma once
// Which precompressed variants a request's Accept-Encoding allows.
#include <array>
#include <cstddef>
#include <string_view>

namespace trestle::statics {

enum class coding { br, gzip };

struct accepted_codings {
    std::array<coding, 2> order{};   // most preferred first
    std::size_t count = 0;

    bool accepts(coding c) const {
        for (std::size_t i = 0; i < count; ++i)
            if (order[i] == c) return true;
        return false;
    }
};

// The codings among br and gzip (x-gzip is gzip) with a q-value above 0,
// by their own entry or else by "*"; higher q first, br before gzip on a
// tie. A missing field, or an element with a malformed q, accepts nothing
// beyond identity.
accepted_codings parse_accept_encoding(std::string_view field);

} // namespace trestle::statics
