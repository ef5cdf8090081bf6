#pragma once
// The Range request field (RFC 9110 14.2) against a representation of a
// known size.
#include <cstdint>
#include <string_view>

namespace trestle::statics {

struct range_request {
    enum class kind {
        whole,           // no usable Range: send everything with 200
        single,          // one range: 206 with [first, last]
        unsatisfiable,   // valid, but no range overlaps the content: 416
    };
    kind type = kind::whole;
    std::uint64_t first = 0;   // inclusive
    std::uint64_t last = 0;    // inclusive
};

// `bytes=a-b`, `bytes=a-` and `bytes=-n`, comma-separated. A unit other
// than bytes, a syntax error or a range whose end precedes its start makes
// the whole field ignored (whole). Ranges past the end are dropped; none
// left is unsatisfiable. Several ranges that overlap or touch are merged;
// if they still leave more than one piece the answer is the whole content
// (no multipart/byteranges).
range_request parse_range(std::string_view field, std::uint64_t size);

} // namespace trestle::statics
